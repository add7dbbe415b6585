import type { IncomingMessage } from "node:http";

/** What a request wants to do: the distribution-spec scopes (`repository:<name>:pull,push`). */
export type Action = "pull" | "push" | "delete";

export interface AccessRequest {
  /** The repository acted on; undefined for registry-wide resources such as `/v2/` or the catalog. */
  repository?: string;
  actions: Action[];
  /** Registry-wide resource, e.g. `registry:catalog:*`. */
  registryResource?: "catalog";
}

/** Who a request acts for once authorized. */
export interface Principal {
  subject: string;
  tenant?: string;
}

/** Decides whether a request may do what it asks; throws a 401/403 RegistryError when not. */
export interface AccessController {
  authorize(request: IncomingMessage, access: AccessRequest): Promise<Principal>;
}

/** `auth.mode: none`: everyone may do everything (the laptop default). */
export class OpenAccess implements AccessController {
  async authorize(): Promise<Principal> {
    return { subject: "anonymous" };
  }
}
