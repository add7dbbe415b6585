import { createPublicKey, type JsonWebKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import jwt from "jsonwebtoken";
import type { Principal } from "./access.js";
import type { SigningAlgorithm } from "./signing-keys.js";
import { TokenRejected } from "./tokens.js";

export interface ServiceAccountOptions {
  issuer: string;
  audiences: readonly string[];
  jwksFile?: string;
  jwksUrl?: string;
  /** How long (ms) a JWKS is used before it is read again. */
  refreshMs: number;
  now: () => number;
}

export interface VerifiedServiceAccount {
  principal: Principal;
  /** Seconds since the epoch. */
  expiresAt: number;
}

interface IssuerKey {
  key: KeyObject;
  alg: SigningAlgorithm;
}

/** The kube-apiserver's own leeway for service-account token times. */
const CLOCK_LEEWAY_SECONDS = 60;
/** An unknown `kid` re-reads the JWKS (the issuer may have rotated), at most this often. */
const MIN_RELOAD_MS = 10_000;

/** Verifies Kubernetes service-account tokens against the cluster issuer's JWKS; the namespace is the tenant. */
export class ServiceAccountTokens {
  private keysById?: Map<string, IssuerKey>;
  private loadedAt = -Infinity;
  private loading?: Promise<Map<string, IssuerKey>>;

  constructor(private readonly options: ServiceAccountOptions) {}

  /** Whether a string claims to come from the cluster issuer (unverified: only to route a password). */
  isServiceAccountToken(token: string): boolean {
    const payload = jwt.decode(token, { json: true });
    return payload !== null && payload.iss === this.options.issuer;
  }

  async verify(token: string): Promise<VerifiedServiceAccount> {
    const decoded = jwt.decode(token, { complete: true });
    if (decoded === null || typeof decoded.payload === "string") throw new TokenRejected("not a JWT");
    const kid = decoded.header.kid;
    if (kid === undefined) throw new TokenRejected("service-account token has no kid");
    let key = (await this.keys(false)).get(kid);
    if (!key && this.options.now() - this.loadedAt >= MIN_RELOAD_MS) key = (await this.keys(true)).get(kid);
    if (!key) throw new TokenRejected("service-account token signed by a key the issuer does not publish");
    if (decoded.header.alg !== key.alg) throw new TokenRejected(`token algorithm ${decoded.header.alg} does not match its key`);
    let claims: jwt.JwtPayload;
    try {
      claims = jwt.verify(token, key.key, {
        algorithms: [key.alg],
        issuer: this.options.issuer,
        audience: this.options.audiences as [string, ...string[]],
        clockTimestamp: Math.floor(this.options.now() / 1000),
        clockTolerance: CLOCK_LEEWAY_SECONDS,
      }) as jwt.JwtPayload;
    } catch (err) {
      throw new TokenRejected(`service-account token refused: ${(err as Error).message}`);
    }
    const kubernetes = claims["kubernetes.io"] as { namespace?: unknown; serviceaccount?: { name?: unknown } } | undefined;
    const namespace = kubernetes?.namespace;
    const name = kubernetes?.serviceaccount?.name;
    if (typeof claims.exp !== "number") throw new TokenRejected("service-account token has no exp");
    if (typeof namespace !== "string" || typeof name !== "string" || claims.sub !== `system:serviceaccount:${namespace}:${name}`) {
      throw new TokenRejected("service-account token lacks a consistent kubernetes.io namespace and service account");
    }
    return { principal: { subject: claims.sub, tenant: namespace, role: "serviceaccount" }, expiresAt: claims.exp };
  }

  private async keys(reload: boolean): Promise<Map<string, IssuerKey>> {
    const fresh = this.options.now() - this.loadedAt < this.options.refreshMs;
    if (this.keysById && fresh && !reload) return this.keysById;
    // A JWKS that cannot be re-read leaves the last good one in use until the next attempt.
    this.loading ??= this.load()
      .catch((err: unknown) => {
        if (!this.keysById) throw err;
        this.loadedAt = this.options.now();
        return this.keysById;
      })
      .finally(() => (this.loading = undefined));
    return this.loading;
  }

  private async load(): Promise<Map<string, IssuerKey>> {
    const document = JSON.parse(await this.readJwks()) as { keys?: JsonWebKey[] };
    const keys = new Map<string, IssuerKey>();
    for (const jwk of document.keys ?? []) {
      const alg = algorithmOf(jwk);
      if (typeof jwk.kid !== "string" || !alg || jwk.use === "enc") continue;
      keys.set(jwk.kid, { key: createPublicKey({ key: jwk, format: "jwk" }), alg });
    }
    this.keysById = keys;
    this.loadedAt = this.options.now();
    return keys;
  }

  private async readJwks(): Promise<string> {
    if (this.options.jwksFile !== undefined) return readFile(this.options.jwksFile, "utf8");
    const response = await fetch(this.options.jwksUrl as string, { signal: AbortSignal.timeout(10_000), headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${this.options.jwksUrl} answered ${response.status}`);
    return response.text();
  }
}

function algorithmOf(jwk: JsonWebKey): SigningAlgorithm | undefined {
  if (jwk.alg === "RS256" || (jwk.alg === undefined && jwk.kty === "RSA")) return jwk.kty === "RSA" ? "RS256" : undefined;
  if (jwk.alg === "ES256" || (jwk.alg === undefined && jwk.kty === "EC")) return jwk.kty === "EC" && jwk.crv === "P-256" ? "ES256" : undefined;
  return undefined;
}
