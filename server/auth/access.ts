import type { IncomingMessage } from "node:http";

/** What a request wants to do: the distribution-spec scopes (`repository:<name>:pull,push`). */
export type Action = "pull" | "push" | "delete";

export interface AccessRequest {
  /**
   * The policy name of the repository acted on (one name per repository, whatever route the
   * request took); undefined for registry-wide resources such as `/v2/` or the catalog.
   */
  repository?: string;
  /**
   * The names a token's scope may give this repository (the name as addressed, and the
   * canonical one): clients ask for the path they request. Default: `[repository]`.
   */
  scopeNames?: readonly string[];
  actions: Action[];
  /** Registry-wide resource, e.g. `registry:catalog:*`. */
  registryResource?: "catalog";
}

/** How a principal proved who it is: a static account (user or node) or a Kubernetes service-account token. */
export type PrincipalRole = "user" | "node" | "serviceaccount";

/** Who a request acts for once authorized. */
export interface Principal {
  subject: string;
  /** The tenant it acts for: an account's configured tenant, a service account's namespace. */
  tenant?: string;
  /** Absent for the anonymous principal. */
  role?: PrincipalRole;
}

/** The principal of a request that presented no credentials. */
export const ANONYMOUS: Principal = Object.freeze({ subject: "anonymous" });

/** Decides whether a request may do what it asks; throws a 401/403 RegistryError when not. */
export interface AccessController {
  authorize(request: IncomingMessage, access: AccessRequest): Promise<Principal>;
  /**
   * Whether policy lets a principal act on a repository, whatever its current token holds:
   * e.g. before serving content one tenant cached to another.
   */
  allows(principal: Principal, repository: string, action: Action): boolean;
}

/** `auth.mode: none`: everyone may do everything (the laptop default). */
export class OpenAccess implements AccessController {
  async authorize(): Promise<Principal> {
    return ANONYMOUS;
  }

  allows(_principal: Principal, _repository: string, _action: Action): boolean {
    return true;
  }
}
