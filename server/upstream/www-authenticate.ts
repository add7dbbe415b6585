/** One challenge from a `WWW-Authenticate` header: `Bearer realm="...",service="...",scope="..."`. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses the first challenge of a WWW-Authenticate header (RFC 9110 §11.6.1 auth-param syntax). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const schemeMatch = /^\s*([A-Za-z][A-Za-z0-9._~+/-]*)\s*/.exec(header);
  if (!schemeMatch) return undefined;
  const params: Record<string, string> = {};
  const paramPattern = /([A-Za-z0-9._~+-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)\s*,?\s*/y;
  paramPattern.lastIndex = schemeMatch[0].length;
  let match: RegExpExecArray | null;
  while ((match = paramPattern.exec(header)) !== null && match[0] !== "") {
    params[match[1].toLowerCase()] = match[3] !== undefined ? match[3].replace(/\\(.)/g, "$1") : match[2];
  }
  return { scheme: schemeMatch[1].toLowerCase(), params };
}
