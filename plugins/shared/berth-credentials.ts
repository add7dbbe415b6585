import { readFile } from "node:fs/promises";

/**
 * What the plugins share: where berth is, which registry hosts name it, and how to turn a node
 * password or a service-account token into a short-lived berth credential through its public
 * /token endpoint. Nothing here knows berth's internals.
 */

/** The username that goes with a berth credential: berth reads the subject from the token itself. */
export const TOKEN_USERNAME = "berth-token";

const REQUEST_TIMEOUT_MS = 20_000;

/** A failure to report on stderr: the message is the whole reason, one line. */
export class PluginError extends Error {}

/** berth answered `/v2/` without a challenge (`auth.mode: none`): there is no credential to fetch, and none is needed. */
export class NoCredentialNeeded extends PluginError {}

export interface CredentialSource {
  /** Where berth answers. */
  berthUrl: URL;
  /** `host[:port]` names under which runtimes reach berth (image references, docker server URLs). */
  registryHosts: string[];
}

/** `--berth-url`, else `BERTH_URL`, else the `berth` Service's `BERTH_SERVICE_HOST`/`BERTH_SERVICE_PORT`. */
export function berthUrlFrom(flag: string | undefined, env: NodeJS.ProcessEnv): URL | undefined {
  let text = flag ?? env.BERTH_URL;
  if (text === undefined && env.BERTH_SERVICE_HOST && env.BERTH_SERVICE_PORT) {
    const host = env.BERTH_SERVICE_HOST.includes(":") ? `[${env.BERTH_SERVICE_HOST}]` : env.BERTH_SERVICE_HOST;
    text = `http://${host}:${env.BERTH_SERVICE_PORT}`;
  }
  if (text === undefined || text === "") return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new PluginError(`berth URL ${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new PluginError(`berth URL ${text} must be http or https`);
  return url;
}

/** `--registry` values, else `BERTH_REGISTRY_HOSTS` (comma-separated), else the berth URL's host. */
export function registryHostsFrom(flags: readonly string[] | undefined, env: NodeJS.ProcessEnv, berthUrl: URL): string[] {
  const listed = flags && flags.length > 0 ? flags : (env.BERTH_REGISTRY_HOSTS ?? "").split(",");
  const hosts = listed.map((h) => h.trim().toLowerCase()).filter((h) => h !== "");
  return hosts.length > 0 ? hosts : [berthUrl.host];
}

/** The node password: `BERTH_PASSWORD`, else the file named by `--password-file` / `BERTH_PASSWORD_FILE`. */
export async function passwordFrom(flag: string | undefined, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (env.BERTH_PASSWORD !== undefined && env.BERTH_PASSWORD !== "") return env.BERTH_PASSWORD;
  const file = flag ?? env.BERTH_PASSWORD_FILE;
  if (file === undefined || file === "") return undefined;
  try {
    return (await readFile(file, "utf8")).replace(/\r?\n$/, "");
  } catch (err) {
    throw new PluginError(`cannot read password file ${file}: ${(err as Error).message}`);
  }
}

export interface BerthCredential {
  username: string;
  /** A berth refresh token: what runtimes present as the password to /token. */
  password: string;
  /** Seconds it stays valid. */
  expiresIn: number;
}

/**
 * Exchanges a proof of identity (node username + password, or a Kubernetes service-account
 * token as the password) for a short-lived berth credential: an OAuth2 password grant with
 * `access_type=offline` against berth's /token. The service name comes from berth's own challenge.
 */
export async function fetchCredential(berthUrl: URL, proof: { username: string; password: string }, clientId: string): Promise<BerthCredential> {
  const service = await serviceOf(berthUrl);
  const form = new URLSearchParams({
    grant_type: "password",
    username: proof.username,
    password: proof.password,
    service,
    client_id: clientId,
    access_type: "offline",
  });
  const response = await request(new URL("token", withSlash(berthUrl)), { method: "POST", body: form });
  const body = (await response.json().catch(() => undefined)) as
    | { refresh_token?: unknown; refresh_expires_in?: unknown; errors?: { message?: string }[] }
    | undefined;
  if (!response.ok) {
    throw new PluginError(`berth refused the credentials (${response.status}${body?.errors?.[0]?.message ? `: ${body.errors[0].message}` : ""})`);
  }
  if (typeof body?.refresh_token !== "string" || typeof body.refresh_expires_in !== "number") {
    throw new PluginError("berth's /token answer holds no refresh_token and refresh_expires_in");
  }
  return { username: TOKEN_USERNAME, password: body.refresh_token, expiresIn: body.refresh_expires_in };
}

/** The `service` of berth's `/v2/` challenge. */
async function serviceOf(berthUrl: URL): Promise<string> {
  const response = await request(new URL("v2/", withSlash(berthUrl)), { method: "GET" });
  await response.body?.cancel();
  const challenge = response.headers.get("www-authenticate") ?? "";
  if (response.status === 200) throw new NoCredentialNeeded(`berth at ${berthUrl.origin} asks for no credentials (GET /v2/ answered 200: auth.mode none)`);
  if (response.status !== 401 || !/^bearer\s/i.test(challenge)) {
    throw new PluginError(`berth at ${berthUrl.origin} does not ask for tokens (GET /v2/ answered ${response.status}); is auth.mode token?`);
  }
  const service = challengeParams(challenge).service;
  if (!service) throw new PluginError(`berth's challenge names no service: ${challenge}`);
  return service;
}

function challengeParams(challenge: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [, name, value] of challenge.matchAll(/([A-Za-z_]+)="((?:[^"\\]|\\.)*)"/g)) params[name.toLowerCase()] = value.replace(/\\(.)/g, "$1");
  return params;
}

async function request(url: URL, init: { method: string; body?: URLSearchParams }): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: "error", signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new PluginError(`cannot reach berth at ${url.origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
}

function withSlash(url: URL): URL {
  return new URL(url.href.endsWith("/") ? url.href : `${url.href}/`);
}

/** Everything on stdin, as text (requests are small; a cap keeps a runaway writer out). */
export async function readStdin(limit = 1 << 20): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new PluginError(`stdin is larger than ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
