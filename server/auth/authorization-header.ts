/** Credentials a request presents in its `Authorization` header. */
export type PresentedCredentials = { scheme: "bearer"; token: string } | { scheme: "basic"; username: string; password: string };

/** Parses `Bearer TOKEN` or `Basic base64(user:password)`; undefined when absent or unusable. */
export function parseAuthorization(header: string | undefined): PresentedCredentials | undefined {
  if (header === undefined) return undefined;
  const match = /^(\S+)\s+(\S+)\s*$/.exec(header);
  if (!match) return undefined;
  const scheme = match[1].toLowerCase();
  if (scheme === "bearer") return { scheme, token: match[2] };
  if (scheme !== "basic") return undefined;
  const decoded = Buffer.from(match[2], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { scheme, username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
