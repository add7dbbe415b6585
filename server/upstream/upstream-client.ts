import type { Readable } from "node:stream";
import NodeCache from "node-cache";
import { Agent, DecoratorHandler, request, type Dispatcher } from "undici";
import { NO_METRICS, type UpstreamMeter } from "../metrics/registry-metrics.js";
import { closeSafeBodies } from "./close-safe-interceptor.js";
import { guardProgress } from "./progress-guard.js";
import { parseChallenge, type Challenge } from "./www-authenticate.js";
import { retryAfterMs, UpstreamError } from "./upstream-error.js";

/** One credential for an upstream; see server/upstream/credentials for where they come from. */
export interface UpstreamCredential {
  username?: string;
  password?: string;
  identityToken?: string;
  registryToken?: string;
  /** Where it came from, for logs; never the secret. */
  source: string;
}

/** Finds the credentials that match an image (`host[:port]/repository`), most specific first. */
export interface CredentialLookup {
  lookup(image: string): Promise<UpstreamCredential[]>;
}

export interface UpstreamEndpoint {
  /** The registry host clients name (`docker.io`, `127.0.0.1:5312`). */
  host: string;
  /** Where berth fetches from. */
  url: string;
  connectTimeoutMs: number;
  /** Longest wait for response headers, and between two chunks of a body; also the window of progress-guard.ts. */
  readTimeoutMs: number;
}

/** Whether an answer needed credentials: content anyone may fetch can be shared between tenants. */
export interface Provenance {
  anonymous: boolean;
}

export interface UpstreamManifest extends Provenance {
  digest?: string;
  mediaType: string;
  size?: number;
  /** Absent for HEAD. */
  bytes?: Buffer;
}

export interface UpstreamBlob extends Provenance {
  /** From Content-Length; undefined when the upstream streams without one. */
  size?: number;
  body: Readable;
}

const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

/** Largest manifest body berth reads from an upstream. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const DEFAULT_TOKEN_SECONDS = 60;

/**
 * Talks the distribution API to one upstream registry: answers 401 challenges with Basic
 * or the Bearer token flow, trying every matching credential in order, and keeps the
 * authorization that worked per repository until it expires.
 */
export class UpstreamClient {
  private readonly authorizations = new NodeCache({ stdTTL: 300, useClones: false, checkperiod: 60 });
  private readonly views = new Map<string, UpstreamClient>();
  private readonly dispatcher: Dispatcher;

  constructor(
    readonly endpoint: UpstreamEndpoint,
    private readonly credentials: CredentialLookup,
    private readonly meter: UpstreamMeter = NO_METRICS.upstream(endpoint.host),
    private readonly agent: Agent = new Agent({
      connect: { timeout: endpoint.connectTimeoutMs },
      headersTimeout: endpoint.readTimeoutMs,
      bodyTimeout: endpoint.readTimeoutMs,
      keepAliveTimeout: 30_000,
      connections: 64,
    }),
  ) {
    this.dispatcher = agent.compose(closeSafeBodies(), metered(meter));
  }

  /**
   * The same upstream seen with other credentials (a tenant's): its own authorization cache,
   * the same connection pool. Created once per key.
   */
  as(key: string, credentials: () => CredentialLookup): UpstreamClient {
    let view = this.views.get(key);
    if (!view) {
      view = new UpstreamClient(this.endpoint, credentials(), this.meter, this.agent);
      this.views.set(key, view);
    }
    return view;
  }

  async manifest(repository: string, reference: string, method: "GET" | "HEAD"): Promise<UpstreamManifest> {
    const { response, anonymous } = await this.send(repository, method, `/v2/${repository}/manifests/${reference}`, { accept: MANIFEST_ACCEPT });
    const what = `manifest ${repository}:${reference}`;
    await this.expectOk(response, what);
    const mediaType = header(response, "content-type")?.split(";")[0].trim() ?? "";
    const digest = header(response, "docker-content-digest");
    const length = header(response, "content-length");
    if (method === "HEAD") {
      await response.body.dump();
      return { digest, mediaType, size: length === undefined ? undefined : Number(length), anonymous };
    }
    const bytes = await readLimited(guardProgress(response.body, this.endpoint.readTimeoutMs, this.describe(what)), MAX_MANIFEST_BYTES, this.describe(what));
    return { digest, mediaType, size: bytes.length, bytes, anonymous };
  }

  async blob(repository: string, digest: string): Promise<UpstreamBlob> {
    const { response, anonymous } = await this.send(repository, "GET", `/v2/${repository}/blobs/${digest}`, {});
    await this.expectOk(response, `blob ${repository}@${digest}`);
    const length = header(response, "content-length");
    const body = guardProgress(response.body, this.endpoint.readTimeoutMs, this.describe(`blob ${repository}@${digest}`));
    return { size: length === undefined ? undefined : Number(length), body, anonymous };
  }

  async blobSize(repository: string, digest: string): Promise<{ size?: number } & Provenance> {
    const { response, anonymous } = await this.send(repository, "HEAD", `/v2/${repository}/blobs/${digest}`, {});
    await this.expectOk(response, `blob ${repository}@${digest}`);
    await response.body.dump();
    const length = header(response, "content-length");
    return { size: length === undefined ? undefined : Number(length), anonymous };
  }

  /** Every tag, following `Link` pagination. */
  async tags(repository: string): Promise<{ tags: string[] } & Provenance> {
    const tags: string[] = [];
    let anonymous = true;
    let path: string | undefined = `/v2/${repository}/tags/list`;
    for (let page = 0; path && page < 1000; page++) {
      const sent = await this.send(repository, "GET", path, { accept: "application/json" });
      const { response } = sent;
      anonymous &&= sent.anonymous;
      await this.expectOk(response, `tags of ${repository}`);
      const body = JSON.parse((await readLimited(response.body, 16 * 1024 * 1024, this.describe("tags"))).toString("utf8")) as { tags?: unknown };
      if (Array.isArray(body.tags)) tags.push(...body.tags.filter((t): t is string => typeof t === "string"));
      path = nextLink(header(response, "link"));
    }
    return { tags, anonymous };
  }

  async referrers(repository: string, digest: string): Promise<{ body: Buffer } & Provenance> {
    const { response, anonymous } = await this.send(repository, "GET", `/v2/${repository}/referrers/${digest}`, { accept: "application/vnd.oci.image.index.v1+json" });
    await this.expectOk(response, `referrers of ${repository}@${digest}`);
    return { body: await readLimited(response.body, MAX_MANIFEST_BYTES, this.describe("referrers")), anonymous };
  }

  async close(): Promise<void> {
    for (const view of this.views.values()) view.authorizations.close();
    this.authorizations.close();
    await this.agent.close();
  }

  private describe(what: string): string {
    return `${this.endpoint.host}: ${what}`;
  }

  /** Sends a request, answering challenges; `anonymous` when no credential was needed. */
  private async send(repository: string, method: string, path: string, headers: Record<string, string>): Promise<{ response: Dispatcher.ResponseData; anonymous: boolean }> {
    const cached = this.authorizations.get<{ header: string; anonymous: boolean }>(repository);
    const first = await this.request(method, path, cached ? { ...headers, authorization: cached.header } : headers);
    if (first.statusCode !== 401 && !(cached && first.statusCode === 403)) return { response: first, anonymous: cached?.anonymous ?? true };
    const challenge = cached ? undefined : parseChallenge(header(first, "www-authenticate"));
    await first.body.dump();
    if (cached) this.authorizations.del(repository);
    const effectiveChallenge = challenge ?? (await this.challengeFor(method, path, headers));
    if (!effectiveChallenge) throw new UpstreamError("denied", `${this.describe(path)}: refused without a usable challenge`, { status: 401 });

    const candidates = await this.credentials.lookup(`${this.endpoint.host}/${repository}`);
    const attempts: (UpstreamCredential | undefined)[] = candidates.length > 0 ? candidates : [undefined];
    for (const credential of attempts) {
      const authorization = await this.authorize(effectiveChallenge, credential, repository);
      if (!authorization) continue;
      const response = await this.request(method, path, { ...headers, authorization: authorization.header });
      if (response.statusCode === 401 || response.statusCode === 403) {
        await response.body.dump();
        continue;
      }
      const anonymous = credential === undefined;
      this.authorizations.set(repository, { header: authorization.header, anonymous }, authorization.ttlSeconds);
      return { response, anonymous };
    }
    throw new UpstreamError("denied", `${this.describe(path)}: every credential was refused (${attempts.map((c) => c?.source ?? "anonymous").join(", ")})`, { status: 401 });
  }

  /** A fresh unauthenticated request, when a cached authorization went stale. */
  private async challengeFor(method: string, path: string, headers: Record<string, string>): Promise<Challenge | undefined> {
    const response = await this.request(method, path, headers);
    await response.body.dump();
    return response.statusCode === 401 ? parseChallenge(header(response, "www-authenticate")) : undefined;
  }

  private async authorize(challenge: Challenge, credential: UpstreamCredential | undefined, repository: string): Promise<{ header: string; ttlSeconds: number } | undefined> {
    if (challenge.scheme === "basic") {
      if (credential?.username === undefined || credential.password === undefined) return undefined;
      return { header: basic(credential.username, credential.password), ttlSeconds: 300 };
    }
    if (challenge.scheme !== "bearer") return undefined;
    if (credential?.registryToken) return { header: `Bearer ${credential.registryToken}`, ttlSeconds: DEFAULT_TOKEN_SECONDS };
    const realm = challenge.params.realm;
    if (!realm) return undefined;
    const scope = challenge.params.scope ?? `repository:${repository}:pull`;
    const token = await this.fetchToken(realm, challenge.params.service, scope, credential);
    return token && { header: `Bearer ${token.token}`, ttlSeconds: Math.max(1, token.expiresIn - 10) };
  }

  /** The Docker token flow: GET with Basic credentials, or the OAuth2 refresh-token POST for identity tokens. */
  private async fetchToken(realm: string, service: string | undefined, scope: string, credential: UpstreamCredential | undefined): Promise<{ token: string; expiresIn: number } | undefined> {
    const url = new URL(realm);
    let response: Dispatcher.ResponseData;
    if (credential?.identityToken) {
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: credential.identityToken, client_id: "berth", scope });
      if (service) form.set("service", service);
      response = await this.call(url, "POST", { "content-type": "application/x-www-form-urlencoded" }, form.toString());
    } else {
      if (service) url.searchParams.set("service", service);
      url.searchParams.set("scope", scope);
      const headers: Record<string, string> = {};
      if (credential?.username !== undefined && credential.password !== undefined) {
        headers.authorization = basic(credential.username, credential.password);
        url.searchParams.set("account", credential.username);
      }
      response = await this.call(url, "GET", headers);
    }
    if (response.statusCode === 401 || response.statusCode === 403) {
      await response.body.dump();
      return undefined;
    }
    await this.expectOk(response, `token from ${url.host}`);
    const body = JSON.parse((await readLimited(response.body, 1024 * 1024, this.describe("token"))).toString("utf8")) as {
      token?: string;
      access_token?: string;
      expires_in?: number;
    };
    const token = body.token ?? body.access_token;
    if (!token) throw new UpstreamError("server", `${this.describe("token")}: answer carried no token`);
    return { token, expiresIn: typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS };
  }

  private request(method: string, path: string, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
    return this.call(new URL(path, this.endpoint.url), method, headers);
  }

  private async call(url: URL, method: string, headers: Record<string, string>, body?: string): Promise<Dispatcher.ResponseData> {
    try {
      return await request(url, {
        method: method as Dispatcher.HttpMethod,
        headers: { "user-agent": "berth", ...headers },
        body,
        dispatcher: this.dispatcher,
        maxRedirections: 5,
      });
    } catch (err) {
      throw new UpstreamError("unreachable", `${this.endpoint.host}: ${method} ${url.pathname}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async expectOk(response: Dispatcher.ResponseData, what: string): Promise<void> {
    const status = response.statusCode;
    if (status >= 200 && status < 300) return;
    await response.body.dump().catch(() => {});
    const message = `${this.describe(what)}: upstream answered ${status}`;
    if (status === 404) throw new UpstreamError("not-found", message, { status });
    if (status === 429) throw new UpstreamError("rate-limited", message, { status, retryAfterMs: retryAfterMs(response.headers["retry-after"]) });
    if (status === 401 || status === 403) throw new UpstreamError("denied", message, { status });
    throw new UpstreamError("server", message, { status, retryAfterMs: status === 503 ? retryAfterMs(response.headers["retry-after"]) : undefined });
  }
}

/** Counts every exchange on the meter: status, time to headers, body bytes (after redirects). */
function metered(meter: UpstreamMeter): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (options, handler) => dispatch(options, new MeteredHandler(handler, meter));
}

class MeteredHandler extends DecoratorHandler {
  private readonly started = performance.now();
  private answered = false;

  constructor(
    private readonly handler: Dispatcher.DispatchHandlers,
    private readonly meter: UpstreamMeter,
  ) {
    super(handler);
  }

  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    this.answered = true;
    this.meter.request(statusCode, (performance.now() - this.started) / 1000);
    return this.handler.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
  }

  onData(chunk: Buffer): boolean {
    this.meter.received(chunk.length);
    return this.handler.onData?.(chunk) ?? true;
  }

  onError(err: Error): void {
    if (!this.answered) this.meter.request(0, (performance.now() - this.started) / 1000);
    this.handler.onError?.(err);
  }
}

function header(response: Dispatcher.ResponseData, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
}

async function readLimited(body: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        body.destroy();
        throw new UpstreamError("corrupt", `${what}: body exceeds ${limit} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError("unreachable", `${what}: ${(err as Error).message}`, { cause: err });
  }
  return Buffer.concat(chunks, size);
}

/** The path of a `Link: </v2/...?n=..&last=..>; rel="next"` header. */
function nextLink(link: string | undefined): string | undefined {
  const match = link && /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
  return match ? match[1] : undefined;
}
