import { IMAGE_MANIFEST_TYPES, INDEX_TYPES } from "../registry/media-types.js";
import type { ImageReference } from "../reference/image-reference.js";
import { parseChallenge } from "../upstream/www-authenticate.js";
import { OperationError, UsageError } from "./cli-error.js";

export const DEFAULT_BERTH_URL = "http://127.0.0.1:5000";

/** Every manifest type, indexes first: what a runtime asks for when it resolves a tag. */
export const ACCEPT_ANY_MANIFEST = [...INDEX_TYPES, ...IMAGE_MANIFEST_TYPES].join(", ");

export interface Credentials {
  username: string;
  password: string;
}

/**
 * A client of a running berth's public HTTP API, for the CLI verbs. It follows berth's
 * Bearer challenges to /token (anonymously, or with the given credentials), as any
 * registry client would.
 */
export class BerthClient {
  readonly url: URL;
  private readonly tokens = new Map<string, string>();

  constructor(
    url: string,
    private readonly credentials?: Credentials,
  ) {
    try {
      this.url = new URL(url);
    } catch {
      throw new UsageError(`--berth ${JSON.stringify(url)} is not a URL`);
    }
    if (this.url.protocol !== "http:" && this.url.protocol !== "https:") throw new UsageError(`--berth ${url} must be an http or https URL`);
  }

  /**
   * `/v2/<name>/<kind>/<reference>` for an image: through the upstream of its registry
   * host (`?ns=`, as containerd asks, so berth's prefix for it need not be known), or
   * directly when the image already names berth.
   */
  imagePath(image: ImageReference, kind: "manifests" | "blobs", reference: string): string {
    const path = `/v2/${image.repository}/${kind}/${reference}`;
    return image.host.toLowerCase() === this.url.host.toLowerCase() ? path : `${path}?ns=${encodeURIComponent(image.host)}`;
  }

  /** Sends a request, answering one Bearer challenge; a response that is not 2xx becomes an OperationError. */
  async send(method: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
    const target = new URL(path, this.url);
    // A token's scope is a repository: one token serves every manifest and blob of it.
    const scopeKey = target.pathname.replace(/\/(manifests|blobs)\/[^/]+$/, "") + target.search;
    let response = await this.fetch(target, method, headers, this.tokens.get(scopeKey));
    if (response.status === 401) {
      const challenge = parseChallenge(response.headers.get("www-authenticate") ?? undefined);
      if (challenge?.scheme === "bearer" && challenge.params.realm) {
        await response.arrayBuffer();
        const token = await this.token(challenge.params);
        this.tokens.set(scopeKey, token);
        response = await this.fetch(target, method, headers, token);
      }
    }
    if (!response.ok) throw new OperationError(`${method} ${target.pathname}: ${await failureOf(response)}`);
    return response;
  }

  private async fetch(target: URL, method: string, headers: Record<string, string>, token: string | undefined): Promise<Response> {
    try {
      return await fetch(target, { method, headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
      throw new OperationError(`cannot reach berth at ${this.url.origin}: ${cause}`);
    }
  }

  private async token(params: Record<string, string>): Promise<string> {
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set("service", params.service);
    if (params.scope) realm.searchParams.set("scope", params.scope);
    const headers: Record<string, string> = {};
    if (this.credentials) headers.authorization = `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString("base64")}`;
    const response = await fetch(realm, { headers }).catch((err: unknown) => {
      throw new OperationError(`cannot reach berth's token endpoint ${realm.origin}${realm.pathname}: ${(err as Error).message}`);
    });
    if (!response.ok) throw new OperationError(`berth refused a token${this.credentials ? ` for ${this.credentials.username}` : " to anonymous clients (give --username)"}: ${await failureOf(response)}`);
    const body = (await response.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new OperationError("berth's token endpoint answered without a token");
    return token;
  }
}

/** The first OCI error of a response body, or its status. */
async function failureOf(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  try {
    const error = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
    if (error) return `${response.status} ${error.code ?? ""}: ${error.message ?? ""}`.trim();
  } catch {
    // not an OCI error body
  }
  return `${response.status} ${response.statusText}`;
}
