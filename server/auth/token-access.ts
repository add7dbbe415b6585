import type { IncomingMessage } from "node:http";
import { RegistryError } from "../registry/errors.js";
import type { AccessController, AccessRequest, Action, Principal } from "./access.js";
import { parseAuthorization } from "./authorization-header.js";
import { formatBearerChallenge, type BearerChallenge } from "./challenge.js";
import type { Policy } from "./policy.js";
import { covers, formatScope, requiredAccess } from "./scope.js";
import { TokenRejected, type BerthTokens, type VerifiedAccessToken } from "./tokens.js";

export interface TokenAccessOptions {
  service: string;
  /** Where clients reach berth; the realm is PUBLICURL/token. Default: the request's Host. */
  publicUrl?: string;
}

/**
 * `auth.mode: token`: every /v2/ request carries a berth access token (Bearer, or as the
 * password of Basic) covering what it does. Without one the client gets a challenge naming
 * the scope to ask /token for.
 */
export class TokenAccess implements AccessController {
  constructor(
    private readonly tokens: BerthTokens,
    private readonly policy: Policy,
    private readonly options: TokenAccessOptions,
  ) {}

  async authorize(request: IncomingMessage, access: AccessRequest): Promise<Principal> {
    const needed = requiredAccess(access);
    const challenge = (error?: BearerChallenge["error"]) => ({
      "WWW-Authenticate": formatBearerChallenge({
        realm: this.realm(request),
        service: this.options.service,
        ...(needed.length > 0 ? { scope: needed.map(formatScope).join(" ") } : {}),
        ...(error ? { error } : {}),
      }),
    });
    const presented = parseAuthorization(request.headers.authorization);
    const token = presented?.scheme === "bearer" ? presented.token : presented?.scheme === "basic" && this.tokens.isBerthToken(presented.password) ? presented.password : undefined;
    if (token === undefined) throw new RegistryError("UNAUTHORIZED", undefined, undefined, { headers: challenge() });

    let verified: VerifiedAccessToken;
    try {
      verified = await this.tokens.verifyAccess(token);
    } catch (err) {
      if (!(err instanceof TokenRejected)) throw err;
      throw new RegistryError("UNAUTHORIZED", err.message, undefined, { headers: challenge("invalid_token") });
    }
    if (needed.length === 0) return verified.principal;
    // The token says the client asked for this repository; policy, on its one name, says whether it may.
    const allowed = this.policyAllows(verified.principal, access);
    if (allowed && needed.some((scope) => covers(verified.access, scope))) return verified.principal;

    const detail = needed[0].actions.map((action) => ({ type: needed[0].type, name: needed[0].name, action }));
    // A new token helps only when policy would grant it; an authenticated principal it never would is denied outright.
    if (verified.principal.role !== undefined && !allowed) throw new RegistryError("DENIED", undefined, detail);
    throw new RegistryError("UNAUTHORIZED", "token does not grant this access", detail, { headers: challenge("insufficient_scope") });
  }

  allows(principal: Principal, repository: string, action: Action): boolean {
    return this.policy.allows(principal, repository, action);
  }

  private policyAllows(principal: Principal, access: AccessRequest): boolean {
    if (access.registryResource === "catalog") return this.policy.allowsCatalog(principal);
    const repository = access.repository;
    return repository !== undefined && access.actions.every((action) => this.policy.allows(principal, repository, action));
  }

  private realm(request: IncomingMessage): string {
    if (this.options.publicUrl !== undefined) return `${this.options.publicUrl.replace(/\/+$/, "")}/token`;
    const host = request.headers.host;
    return `http://${host !== undefined && /^[A-Za-z0-9.:[\]-]+$/.test(host) ? host : "localhost"}/token`;
  }
}
