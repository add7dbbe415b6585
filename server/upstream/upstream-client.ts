import type { Readable } from "node:stream";
import NodeCache from "node-cache";
import { request, type Dispatcher } from "undici";
import { NO_METRICS, type UpstreamMeter } from "../metrics/registry-metrics.js";
import { RefusedDestination } from "./destination-policy.js";
import { guardProgress } from "./progress-guard.js";
import { DEFAULT_TOKEN_SECONDS, invalid, LIMITS, nextTagPage, readBounded, referrersIndex, tagPage, tokenAnswer, type BoundedRead, type ReferrerDescriptor } from "./upstream-answers.js";
import { UpstreamConnections } from "./upstream-connections.js";
import type { UpstreamEndpoint } from "./upstream-endpoint.js";
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

/** Statuses whose Location berth follows (300 Multiple Choices names no one answer). */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * Talks the distribution API to one upstream registry: answers 401 challenges with Basic
 * or the Bearer token flow, trying every matching credential in order, and keeps the
 * authorization that worked per repository until it expires.
 */
export class UpstreamClient {
  private readonly authorizations = new NodeCache({ stdTTL: 300, useClones: false, checkperiod: 60 });
  private readonly views = new Map<string, UpstreamClient>();

  constructor(
    readonly endpoint: UpstreamEndpoint,
    private readonly credentials: CredentialLookup,
    private readonly meter: UpstreamMeter = NO_METRICS.upstream(endpoint.host),
    private readonly connections = new UpstreamConnections(endpoint, meter),
  ) {}

  /**
   * The same upstream seen with other credentials (a tenant's): its own authorization cache,
   * the same connection pool. Created once per key.
   */
  as(key: string, credentials: () => CredentialLookup): UpstreamClient {
    let view = this.views.get(key);
    if (!view) {
      view = new UpstreamClient(this.endpoint, credentials(), this.meter, this.connections);
      this.views.set(key, view);
    }
    return view;
  }

  /**
   * `maxAgeMs`, for a tag: how old an answer a cache on the way (a parent tier) may give,
   * sent as `Cache-Control` (0: `no-cache`, revalidate with the origin).
   */
  async manifest(repository: string, reference: string, method: "GET" | "HEAD", maxAgeMs?: number): Promise<UpstreamManifest> {
    const headers: Record<string, string> = { accept: MANIFEST_ACCEPT };
    if (maxAgeMs !== undefined) headers["cache-control"] = maxAgeMs === 0 ? "no-cache" : `max-age=${Math.floor(maxAgeMs / 1000)}`;
    const { response, anonymous } = await this.send(repository, method, `/v2/${repository}/manifests/${reference}`, headers);
    const what = `manifest ${repository}:${reference}`;
    await this.expectOk(response, what);
    const mediaType = header(response, "content-type")?.split(";")[0].trim() ?? "";
    const digest = header(response, "docker-content-digest");
    const length = header(response, "content-length");
    if (method === "HEAD") {
      await response.body.dump();
      return { digest, mediaType, size: length === undefined ? undefined : Number(length), anonymous };
    }
    const bytes = await readBounded(response, this.bounds(LIMITS.manifestBytes, "manifest", what));
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

  /** Every tag, following `Link` pagination on the upstream's own origin. */
  async tags(repository: string): Promise<{ tags: string[] } & Provenance> {
    const tags: string[] = [];
    const what = `tags of ${repository}`;
    const seen = new Set<string>();
    let anonymous = true;
    let budget = LIMITS.tagListBytes;
    let page: URL | undefined = new URL(`/v2/${repository}/tags/list`, this.endpoint.url);
    while (page) {
      if (seen.size === LIMITS.tagPages) throw invalid(`${this.describe(what)}: more than ${LIMITS.tagPages} pages`, `tag list of more than ${LIMITS.tagPages} pages`);
      if (seen.has(page.href)) throw invalid(`${this.describe(what)}: the pages link back to ${page.pathname}${page.search}`, "tag list whose pages link in a circle");
      seen.add(page.href);
      const sent = await this.send(repository, "GET", `${page.pathname}${page.search}`, { accept: "application/json" });
      const { response } = sent;
      anonymous &&= sent.anonymous;
      await this.expectOk(response, what);
      const bytes = await readBounded(response, { ...this.bounds(budget, "tag list", what), whole: LIMITS.tagListBytes });
      budget -= bytes.length;
      tags.push(...tagPage(bytes, this.describe(what)));
      page = nextTagPage(header(response, "link"), page, (url) => this.connections.policy.isOwnOrigin(url), this.describe(what));
    }
    return { tags, anonymous };
  }

  async referrers(repository: string, digest: string): Promise<{ manifests: ReferrerDescriptor[] } & Provenance> {
    const what = `referrers of ${repository}@${digest}`;
    const { response, anonymous } = await this.send(repository, "GET", `/v2/${repository}/referrers/${digest}`, { accept: "application/vnd.oci.image.index.v1+json" });
    await this.expectOk(response, what);
    return { manifests: referrersIndex(await readBounded(response, this.bounds(LIMITS.referrersBytes, "referrers index", what)), this.describe(what)), anonymous };
  }

  async close(): Promise<void> {
    for (const view of this.views.values()) view.authorizations.close();
    this.authorizations.close();
    await this.connections.close();
  }

  private describe(what: string): string {
    return `${this.endpoint.host}: ${what}`;
  }

  private bounds(limit: number, answer: string, what: string): BoundedRead {
    return { limit, answer, what: this.describe(what), windowMs: this.endpoint.readTimeoutMs };
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
    this.checkChallenge(effectiveChallenge, path);

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

  /** A challenge berth can answer: Basic, or Bearer with a realm. */
  private checkChallenge(challenge: Challenge, path: string): void {
    if (challenge.scheme !== "basic" && challenge.scheme !== "bearer") {
      throw invalid(`${this.describe(path)}: challenge of scheme ${JSON.stringify(challenge.scheme.slice(0, 40))}`, "challenge of a scheme berth does not speak");
    }
    if (challenge.scheme === "bearer" && !challenge.params.realm) throw invalid(`${this.describe(path)}: Bearer challenge without a realm`, "Bearer challenge without a realm");
  }

  private async authorize(challenge: Challenge, credential: UpstreamCredential | undefined, repository: string): Promise<{ header: string; ttlSeconds: number } | undefined> {
    if (challenge.scheme === "basic") {
      if (credential?.username === undefined || credential.password === undefined) return undefined;
      return { header: basic(credential.username, credential.password), ttlSeconds: 300 };
    }
    if (credential?.registryToken) return { header: `Bearer ${credential.registryToken}`, ttlSeconds: DEFAULT_TOKEN_SECONDS };
    const scope = challenge.params.scope ?? `repository:${repository}:pull`;
    const token = await this.fetchToken(challenge.params.realm, challenge.params.service, scope, credential);
    return token && { header: `Bearer ${token.token}`, ttlSeconds: Math.max(1, token.expiresIn - 10) };
  }

  /** The Docker token flow: GET with Basic credentials, or the OAuth2 refresh-token POST for identity tokens. */
  private async fetchToken(realm: string, service: string | undefined, scope: string, credential: UpstreamCredential | undefined): Promise<{ token: string; expiresIn: number } | undefined> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw invalid(`${this.describe("token")}: realm ${JSON.stringify(realm.slice(0, 200))} is not a URL`, "token realm that is not a URL");
    }
    let response: Dispatcher.ResponseData;
    if (credential?.identityToken) {
      const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: credential.identityToken, client_id: "berth", scope });
      if (service) form.set("service", service);
      response = await this.call(url, "POST", { "content-type": "application/x-www-form-urlencoded" }, form.toString(), "token realm");
    } else {
      if (service) url.searchParams.set("service", service);
      url.searchParams.set("scope", scope);
      const headers: Record<string, string> = {};
      if (credential?.username !== undefined && credential.password !== undefined) {
        headers.authorization = basic(credential.username, credential.password);
        url.searchParams.set("account", credential.username);
      }
      response = await this.call(url, "GET", headers, undefined, "token realm");
    }
    if (response.statusCode === 401 || response.statusCode === 403) {
      await response.body.dump();
      return undefined;
    }
    const what = `token from ${url.host}`;
    await this.expectOk(response, what);
    return tokenAnswer(await readBounded(response, this.bounds(LIMITS.tokenBytes, "token response", what)), this.describe(what));
  }

  private request(method: string, path: string, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
    return this.call(new URL(path, this.endpoint.url), method, headers);
  }

  /**
   * One request to `url`, following redirects hop by hop: each hop must pass the destination
   * policy, at most LIMITS.redirects of them, and Authorization (or a body, which may carry an
   * identity token) never goes on to another origin. `hop` names a first URL the upstream gave
   * berth (a token realm), for the refusal's reason.
   */
  private async call(url: URL, method: string, headers: Record<string, string>, body?: string, hop = "request"): Promise<Dispatcher.ResponseData> {
    let from = new URL(this.endpoint.url);
    let target = url;
    for (let redirects = 0; ; redirects++) {
      const response = await this.exchange(target, from, hop, method, headers, body);
      const location = REDIRECTS.has(response.statusCode) ? header(response, "location") : undefined;
      if (location === undefined) return response;
      await response.body.dump();
      const where = `${method} ${target.origin}${target.pathname}`;
      hop = "redirect";
      if (redirects === LIMITS.redirects) throw this.refused(`${where}: more than ${LIMITS.redirects} redirects`, `more than ${LIMITS.redirects} redirects`);
      let next: URL;
      try {
        next = new URL(location, target);
      } catch {
        throw this.refused(`${where}: redirect to ${JSON.stringify(location.slice(0, 200))}, not a URL`, "redirect to a location that is not a URL");
      }
      if (next.origin !== target.origin) {
        if (body !== undefined && (response.statusCode === 307 || response.statusCode === 308)) {
          throw this.refused(`${where}: ${response.statusCode} would resend the request body to ${next.origin}`, "redirect of a token request to another host");
        }
        const { authorization: _dropped, ...rest } = headers;
        headers = rest;
      }
      if ((response.statusCode === 303 && method !== "HEAD") || ((response.statusCode === 301 || response.statusCode === 302) && method === "POST")) {
        const { "content-type": _form, ...rest } = headers;
        headers = rest;
        method = "GET";
        body = undefined;
      }
      from = target;
      target = next;
    }
  }

  /** One HTTP exchange with `target`, named by an answer from `from`, through the pool its origin calls for. */
  private async exchange(target: URL, from: URL, hop: string, method: string, headers: Record<string, string>, body: string | undefined): Promise<Dispatcher.ResponseData> {
    try {
      this.connections.policy.checkUrl(target, from);
      return await request(this.addressed(target), {
        method: method as Dispatcher.HttpMethod,
        headers: { "user-agent": "berth", ...headers },
        body,
        dispatcher: this.connections.dispatcherFor(target),
      });
    } catch (err) {
      const where = `${method} ${target.origin}${target.pathname}`;
      if (err instanceof RefusedDestination) throw this.refused(`${where}: ${err.message}`, `${hop} to ${err.refusal}`, err);
      if ((err as { code?: unknown }).code === "UND_ERR_HEADERS_OVERFLOW") {
        throw new UpstreamError("invalid", `${this.endpoint.host}: ${where}: ${(err as Error).message}`, { reason: "answer whose headers exceed what berth reads", cause: err });
      }
      throw new UpstreamError("unreachable", `${this.endpoint.host}: ${where}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** `target` with the endpoint's `ns`, when it is a `/v2/` URL of the endpoint's own origin (pages and redirects included). */
  private addressed(target: URL): URL {
    const namespace = this.endpoint.namespace;
    if (namespace === undefined || !target.pathname.startsWith("/v2/") || !this.connections.policy.isOwnOrigin(target)) return target;
    const addressed = new URL(target);
    addressed.searchParams.set("ns", namespace);
    return addressed;
  }

  /** A redirect or token realm berth does not follow: counted, and an "invalid" answer. */
  private refused(message: string, reason: string, cause?: unknown): UpstreamError {
    this.meter.refusedRedirect();
    return new UpstreamError("invalid", `${this.endpoint.host}: ${message}`, { reason, cause });
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

function header(response: Dispatcher.ResponseData, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
}
