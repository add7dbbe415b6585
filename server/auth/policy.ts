import type { Action, Principal, PrincipalRole } from "./access.js";
import type { ResourceAccess } from "./scope.js";

/** One grant: who (every selector given must match), which repositories, which actions. */
export interface PolicyRule {
  subjects?: string[];
  tenants?: string[];
  roles?: PrincipalRole[];
  /** Applies to every request, with or without credentials. */
  anonymous: boolean;
  repositories: string[];
  actions: Action[];
  catalog: boolean;
}

const TENANT_PLACEHOLDER = "{tenant}";

/**
 * The policy names a repository named without `?ns=` may stand for: itself, and the mirrored
 * repository of the default upstream when no hosted repository takes the name.
 */
export type PolicyNames = (name: string) => readonly string[];

/** Decides what a principal may do; grants are the union of the rules that select it. */
export class Policy {
  private readonly patterns = new Map<string, RegExp>();

  constructor(
    private readonly rules: readonly PolicyRule[],
    private readonly policyNames: PolicyNames = (name) => [name],
  ) {}

  allows(principal: Principal, repository: string, action: Action): boolean {
    return this.rules.some(
      (rule) => rule.actions.includes(action) && selects(rule, principal) && rule.repositories.some((glob) => this.matches(glob, repository, principal)),
    );
  }

  allowsCatalog(principal: Principal): boolean {
    return this.rules.some((rule) => rule.catalog && selects(rule, principal));
  }

  /**
   * The part of `requested` the principal may have: an intersection, never an error for asking
   * too much. A scope names a repository the way a client addressed it, so it is granted when
   * policy allows any repository that name may stand for; each request is then decided on the
   * policy name of the repository it actually reaches.
   */
  grant(principal: Principal, requested: readonly ResourceAccess[]): ResourceAccess[] {
    const granted: ResourceAccess[] = [];
    for (const access of requested) {
      const actions = access.actions.filter((action) => this.allowsScope(principal, access.type, access.name, action));
      if (actions.length > 0) granted.push({ type: access.type, name: access.name, actions });
    }
    return granted;
  }

  private allowsScope(principal: Principal, type: string, name: string, action: string): boolean {
    if (type === "registry") return name === "catalog" && action === "*" && this.allowsCatalog(principal);
    return type === "repository" && isAction(action) && this.policyNames(name).some((policyName) => this.allows(principal, policyName, action));
  }

  private matches(glob: string, repository: string, principal: Principal): boolean {
    if (glob.includes(TENANT_PLACEHOLDER)) {
      if (principal.tenant === undefined) return false;
      glob = glob.replaceAll(TENANT_PLACEHOLDER, principal.tenant);
    }
    let pattern = this.patterns.get(glob);
    if (!pattern) {
      pattern = globPattern(glob);
      this.patterns.set(glob, pattern);
    }
    return pattern.test(repository);
  }
}

function selects(rule: PolicyRule, principal: Principal): boolean {
  if (rule.anonymous) return true;
  if (principal.role === undefined) return false;
  return (
    (rule.subjects === undefined || rule.subjects.includes(principal.subject)) &&
    (rule.tenants === undefined || (principal.tenant !== undefined && rule.tenants.includes(principal.tenant))) &&
    (rule.roles === undefined || rule.roles.includes(principal.role))
  );
}

function isAction(action: string): action is Action {
  return action === "pull" || action === "push" || action === "delete";
}

/** `**` crosses `/`, `*` and `?` stay within one path component; everything else is literal. */
export function globPattern(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i];
    if (char === "*" && glob[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (char === "*") source += "[^/]*";
    else if (char === "?") source += "[^/]";
    else source += char.replace(/[\\^$.|+()[\]{}]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}
