import type { IncomingMessage } from "node:http";
import { ANONYMOUS, type Principal } from "./access.js";
import type { Accounts, CurrentAccount } from "./accounts.js";
import { PasswordChecksBusy } from "./bcrypt-pool.js";
import { TooManyPasswordAttempts, type PasswordAttempt, type PasswordAttempts } from "./password-attempts.js";
import type { Policy } from "./policy.js";
import { formatScope, type ResourceAccess } from "./scope.js";
import type { ServiceAccountTokens } from "./service-accounts.js";
import type { KeyRing } from "./signing-keys.js";
import { TokenRejected, type BerthTokens, type VerifiedRefreshToken } from "./tokens.js";

/** The answer of /token: the Docker token spec's fields and the OAuth2 ones. */
export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  /** RFC 3339, UTC. */
  issued_at: string;
  /** The granted scopes, space-separated (may be less than asked, or empty). */
  scope: string;
  refresh_token?: string;
  /** Seconds the refresh token stays valid (not in the spec; lets the kubelet plugin size its cache). */
  refresh_expires_in?: number;
}

/** A /token request that cannot be answered with a token; rendered as the distribution error JSON. */
export class TokenRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: "UNAUTHORIZED" | "MISSING_REQUIRED_FIELD" | "UNSUPPORTED_VALUE" | "UNAVAILABLE" | "TOOMANYREQUESTS",
    message: string,
    /** Sent as `Retry-After` (429, 503). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** Who a token request proved to be, and until when that proof holds. */
export interface Authenticated {
  principal: Principal;
  /** Seconds since the epoch: a refresh token issued on this proof expires no later. */
  notAfter?: number;
  /** Set when the proof was a refresh token: offline requests get the same one back. */
  refreshToken?: VerifiedRefreshToken;
  /** A static account's state (Accounts.current): a refresh token issued on this proof dies when it changes. */
  accountState?: string;
}

export interface TokenServiceDependencies {
  service: string;
  tokens: BerthTokens;
  keys: KeyRing;
  accounts: Accounts;
  passwordAttempts: PasswordAttempts;
  serviceAccounts?: ServiceAccountTokens;
  policy: Policy;
}

/** The authorization server behind /token: authenticates credentials and grants what policy allows. */
export class TokenService {
  constructor(private readonly deps: TokenServiceDependencies) {}

  get service(): string {
    return this.deps.service;
  }

  /** A request naming another service asks for tokens berth would not accept. */
  checkService(service: string | undefined): void {
    if (service !== undefined && service !== this.deps.service) {
      throw new TokenRequestError(400, "UNSUPPORTED_VALUE", `this token service issues tokens for service ${JSON.stringify(this.deps.service)}`);
    }
  }

  /**
   * Authenticates a username/password pair. The password may be an account's password, a berth
   * refresh token (what the kubelet plugin and docker helper hand out) or a Kubernetes
   * service-account token; for the two tokens the username is informational. Only an account
   * password costs bcrypt, so only those attempts count against the password attempt budgets.
   */
  async authenticatePassword(request: IncomingMessage, username: string, password: string): Promise<Authenticated> {
    if (this.deps.tokens.isBerthToken(password)) return this.authenticateRefreshToken(password);
    if (this.deps.serviceAccounts?.isServiceAccountToken(password)) {
      try {
        const verified = await this.deps.serviceAccounts.verify(password);
        return { principal: verified.principal, notAfter: verified.expiresAt };
      } catch (err) {
        if (err instanceof TokenRejected) throw unauthorized(err.message);
        throw new TokenRequestError(503, "UNAVAILABLE", `cannot read the service-account issuer's keys: ${(err as Error).message}`);
      }
    }
    let attempt: PasswordAttempt;
    try {
      attempt = await this.deps.passwordAttempts.begin(this.deps.passwordAttempts.clientOf(request), username);
    } catch (err) {
      if (err instanceof TooManyPasswordAttempts) throw new TokenRequestError(429, "TOOMANYREQUESTS", err.message, err.retryAfterSeconds);
      throw err;
    }
    let account: CurrentAccount | undefined;
    try {
      account = await this.deps.accounts.authenticate(username, password);
    } catch (err) {
      if (!(err instanceof PasswordChecksBusy)) throw err;
      throw new TokenRequestError(503, "UNAVAILABLE", "too many password checks at once; try again shortly", 1);
    }
    if (!account) {
      await attempt.failed();
      throw unauthorized("invalid username or password");
    }
    await attempt.succeeded();
    return { principal: account.principal, accountState: account.state };
  }

  async authenticateRefreshToken(token: string): Promise<Authenticated> {
    let verified: VerifiedRefreshToken;
    try {
      verified = await this.deps.tokens.verifyRefresh(token);
    } catch (err) {
      if (err instanceof TokenRejected) throw unauthorized(`invalid refresh token: ${err.message}`);
      throw err;
    }
    if (verified.principal.role === "serviceaccount") return { principal: verified.principal, notAfter: verified.expiresAt, refreshToken: verified };
    const account = this.deps.accounts.current(verified.principal.subject);
    if (!account) throw unauthorized(`account ${verified.principal.subject} no longer exists`);
    if (verified.accountState !== account.state) throw unauthorized("the account's password, tenant or role changed since this refresh token was issued");
    // The account as configured now, not as the token remembers it.
    return { principal: account.principal, notAfter: verified.expiresAt, refreshToken: verified, accountState: account.state };
  }

  /** Issues an access token for what was asked and is allowed; anonymous when `who` is undefined. */
  async issue(who: Authenticated | undefined, requested: readonly ResourceAccess[], offline: boolean): Promise<TokenResponse> {
    const principal = who?.principal ?? ANONYMOUS;
    const granted = this.deps.policy.grant(principal, requested);
    const access = await this.deps.tokens.issueAccess(principal, granted);
    const response: TokenResponse = {
      token: access.token,
      access_token: access.token,
      expires_in: access.expiresAt - access.issuedAt,
      issued_at: new Date(access.issuedAt * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"),
      scope: granted.map(formatScope).join(" "),
    };
    if (offline && who) {
      const refresh = who.refreshToken ?? (await this.deps.tokens.issueRefresh(principal, who.notAfter, who.accountState));
      response.refresh_token = refresh.token;
      response.refresh_expires_in = Math.max(0, refresh.expiresAt - access.issuedAt);
    }
    return response;
  }

  jwks(): ReturnType<KeyRing["jwks"]> {
    return this.deps.keys.jwks();
  }
}

function unauthorized(message: string): TokenRequestError {
  return new TokenRequestError(401, "UNAUTHORIZED", message);
}
