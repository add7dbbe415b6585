import { parseChallenge } from "../../server/upstream/www-authenticate.js";

export interface Credentials {
  username: string;
  password: string;
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
  /** `errors[0].code` of an error answer. */
  code?: string;
  /** The token the request was finally sent with, if any. */
  token?: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /**
   * Which scopes the client asks /token for after a challenge: the challenge's (containerd), or
   * only the path it requested, as skopeo and podman do (they ignore the challenge's scope).
   */
  scopes?: "challenge" | "addressed";
  /** The actions an `addressed` scope asks for. */
  actions?: string;
}

/**
 * A registry client doing the Docker token dance against berth as real clients do: the
 * request, the challenge, a token for the scopes it picks (with Basic credentials, or none for
 * anonymous access), the request again with the token.
 */
export class TokenClient {
  constructor(
    private readonly berthUrl: string,
    private readonly credentials?: Credentials,
  ) {}

  async request(path: string, options: RequestOptions = {}): Promise<Answer> {
    const first = await this.send(path, options);
    if (first.status !== 401) return first;
    const challenge = parseChallenge(first.headers.get("www-authenticate") ?? undefined);
    if (!challenge || challenge.scheme !== "bearer") return first;
    const token = await this.token(challenge.params.realm!, challenge.params.service, this.scopesFor(path, challenge.params.scope, options));
    return { ...(await this.send(path, options, token)), token };
  }

  /** A token from berth's /token for `scopes`; throws when /token refuses. */
  async token(realm: string, service: string | undefined, scopes: string[]): Promise<string> {
    const url = new URL(realm);
    if (service) url.searchParams.set("service", service);
    for (const scope of scopes) url.searchParams.append("scope", scope);
    const headers: Record<string, string> = this.credentials ? { authorization: `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString("base64")}` } : {};
    const response = await fetch(url, { headers });
    if (response.status !== 200) throw new Error(`/token answered ${response.status}: ${await response.text()}`);
    return ((await response.json()) as { token: string }).token;
  }

  private scopesFor(path: string, challenged: string | undefined, options: RequestOptions): string[] {
    if ((options.scopes ?? "challenge") === "challenge") return challenged ? challenged.split(" ") : [];
    const name = path.replace(/^\/v2\//, "").split("?")[0].replace(/\/(manifests|blobs|tags|referrers)\/.*$/, "");
    return [`repository:${name}:${options.actions ?? "pull"}`];
  }

  private async send(path: string, options: RequestOptions, token?: string): Promise<Answer> {
    const response = await fetch(`${this.berthUrl}${path}`, {
      method: options.method ?? "GET",
      headers: { ...options.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: options.body === undefined ? undefined : new Uint8Array(options.body),
      redirect: "manual",
    });
    const body = Buffer.from(await response.arrayBuffer());
    let code: string | undefined;
    if (response.status >= 400 && body.length > 0) {
      try {
        code = (JSON.parse(body.toString("utf8")) as { errors?: { code?: string }[] }).errors?.[0]?.code;
      } catch {
        code = undefined;
      }
    }
    return { status: response.status, headers: response.headers, body, code };
  }
}
