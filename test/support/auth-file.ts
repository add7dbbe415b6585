import { writeFile } from "node:fs/promises";

/**
 * Writes a containers auth.json (`{"auths": {HOST: {"auth": base64(USER:PASSWORD)}}}`) for
 * skopeo's and podman's `--authfile`: the only way to give credentials to a mirror, since
 * `--creds` go to the primary registry alone. Keys are `host:port`, or `host:port/path` for
 * a path-prefixed mirror.
 */
export async function writeAuthFile(path: string, credentials: Record<string, { username: string; password: string }>): Promise<void> {
  const auths = Object.fromEntries(
    Object.entries(credentials).map(([host, { username, password }]) => [host, { auth: Buffer.from(`${username}:${password}`).toString("base64") }]),
  );
  await writeFile(path, JSON.stringify({ auths }, null, 2));
}
