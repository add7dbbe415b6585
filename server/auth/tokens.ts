import { randomBytes } from "node:crypto";
import jwt from "jsonwebtoken";
import type { Principal, PrincipalRole } from "./access.js";
import type { ResourceAccess } from "./scope.js";
import type { KeyRing } from "./signing-keys.js";

/** What a token is for: `access` tokens go to /v2/, `refresh` tokens only back to /token. */
type TokenUse = "access" | "refresh";

export interface IssuedToken {
  token: string;
  /** Seconds since the epoch. */
  issuedAt: number;
  expiresAt: number;
}

export interface VerifiedAccessToken {
  principal: Principal;
  access: ResourceAccess[];
  expiresAt: number;
}

export interface VerifiedRefreshToken {
  principal: Principal;
  token: string;
  expiresAt: number;
  /** The `account_state` claim: the account's state when the token was issued (static accounts only). */
  accountState?: string;
}

/** Why a berth token was refused; the message is safe to show the client. */
export class TokenRejected extends Error {}

export interface BerthTokenOptions {
  issuer: string;
  /** The `aud` of every token: the service name of the challenges. */
  service: string;
  lifetimeSeconds: number;
  refreshLifetimeSeconds: number;
  now: () => number;
}

const ROLES: readonly PrincipalRole[] = ["user", "node", "serviceaccount"];

/** Issues and verifies berth's JWTs (Docker token spec claims, plus `tenant`, `role`, `token_use`). */
export class BerthTokens {
  constructor(
    private readonly keys: KeyRing,
    private readonly options: BerthTokenOptions,
  ) {}

  get lifetimeSeconds(): number {
    return this.options.lifetimeSeconds;
  }

  issueAccess(principal: Principal, access: readonly ResourceAccess[]): Promise<IssuedToken> {
    return this.issue(principal, "access", this.options.lifetimeSeconds, { access });
  }

  /**
   * A refresh token never outlives `notAfter` (seconds), e.g. the credential it was obtained with.
   * `accountState` binds it to a static account's current password hash, tenant and role.
   */
  issueRefresh(principal: Principal, notAfter?: number, accountState?: string): Promise<IssuedToken> {
    const now = this.nowSeconds();
    const lifetime = Math.min(this.options.refreshLifetimeSeconds, notAfter === undefined ? Infinity : notAfter - now);
    return this.issue(principal, "refresh", Math.max(0, lifetime), accountState !== undefined ? { account_state: accountState } : {});
  }

  async verifyAccess(token: string): Promise<VerifiedAccessToken> {
    const claims = await this.verify(token, "access");
    if (!Array.isArray(claims.access) || !claims.access.every(isResourceAccess)) throw new TokenRejected("token has a malformed access claim");
    return { principal: principalOf(claims), access: claims.access, expiresAt: claims.exp as number };
  }

  async verifyRefresh(token: string): Promise<VerifiedRefreshToken> {
    const claims = await this.verify(token, "refresh");
    const accountState = typeof claims.account_state === "string" ? claims.account_state : undefined;
    return { principal: principalOf(claims), token, expiresAt: claims.exp as number, ...(accountState !== undefined ? { accountState } : {}) };
  }

  /** Whether a string claims to be one of berth's tokens (unverified: only to route a password). */
  isBerthToken(token: string): boolean {
    const payload = jwt.decode(token, { json: true });
    return payload !== null && payload.iss === this.options.issuer && typeof payload.token_use === "string";
  }

  private async issue(principal: Principal, use: TokenUse, lifetimeSeconds: number, extra: Record<string, unknown>): Promise<IssuedToken> {
    const key = await this.keys.signingKey();
    const issuedAt = this.nowSeconds();
    const expiresAt = issuedAt + lifetimeSeconds;
    const claims = {
      iss: this.options.issuer,
      sub: principal.subject,
      aud: this.options.service,
      exp: expiresAt,
      nbf: issuedAt,
      iat: issuedAt,
      jti: randomBytes(16).toString("base64url"),
      token_use: use,
      ...(principal.tenant !== undefined ? { tenant: principal.tenant } : {}),
      ...(principal.role !== undefined ? { role: principal.role } : {}),
      ...extra,
    };
    const token = jwt.sign(claims, key.privateKey, { algorithm: key.alg, keyid: key.kid });
    return { token, issuedAt, expiresAt };
  }

  private async verify(token: string, use: TokenUse): Promise<jwt.JwtPayload> {
    const decoded = jwt.decode(token, { complete: true });
    if (decoded === null || typeof decoded.payload === "string") throw new TokenRejected("not a JWT");
    const kid = decoded.header.kid;
    const key = kid === undefined ? undefined : await this.keys.verificationKey(kid);
    if (!key) throw new TokenRejected("token signed by an unknown key");
    if (decoded.header.alg !== key.alg) throw new TokenRejected(`token algorithm ${decoded.header.alg} does not match its key`);
    let claims: jwt.JwtPayload;
    try {
      claims = jwt.verify(token, key.publicKey, {
        algorithms: [key.alg],
        issuer: this.options.issuer,
        audience: this.options.service,
        clockTimestamp: this.nowSeconds(),
        complete: false,
      }) as jwt.JwtPayload;
    } catch (err) {
      throw new TokenRejected(`token refused: ${(err as Error).message}`);
    }
    if (typeof claims.exp !== "number" || typeof claims.sub !== "string" || claims.sub === "") throw new TokenRejected("token lacks exp or sub");
    if (claims.token_use !== use) throw new TokenRejected(`token_use is not ${use}`);
    return claims;
  }

  private nowSeconds(): number {
    return Math.floor(this.options.now() / 1000);
  }
}

function principalOf(claims: jwt.JwtPayload): Principal {
  const role = ROLES.find((r) => r === claims.role);
  const tenant = typeof claims.tenant === "string" ? claims.tenant : undefined;
  return { subject: claims.sub as string, ...(tenant !== undefined ? { tenant } : {}), ...(role !== undefined ? { role } : {}) };
}

function isResourceAccess(value: unknown): value is ResourceAccess {
  const entry = value as ResourceAccess;
  return (
    typeof entry === "object" &&
    entry !== null &&
    typeof entry.type === "string" &&
    typeof entry.name === "string" &&
    Array.isArray(entry.actions) &&
    entry.actions.every((a) => typeof a === "string")
  );
}
