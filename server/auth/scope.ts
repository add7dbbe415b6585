import type { AccessRequest } from "./access.js";

/**
 * One resource and the actions on it: an entry of a token's `access` claim, and one
 * `type:name:actions` scope of a token request or challenge (`repository:team/app:pull,push`).
 */
export interface ResourceAccess {
  type: string;
  name: string;
  actions: string[];
}

const RESOURCE_TYPE = /^[a-z0-9]+(\([a-z0-9]+\))?$/;
const ACTION = /^([a-z]+|\*)$/;

/**
 * Parses scopes: each value may hold several, space-separated (the OAuth2 form). The name sits
 * between the first and the last `:` because a name may carry a `host:port`. Malformed scopes are
 * ignored, like Distribution does; entries for the same resource are merged.
 */
export function parseScopes(values: readonly string[]): ResourceAccess[] {
  const merged = new Map<string, ResourceAccess>();
  for (const scope of values.flatMap((value) => value.split(" "))) {
    const first = scope.indexOf(":");
    const last = scope.lastIndexOf(":");
    if (first <= 0 || last === first) continue;
    const type = scope.slice(0, first);
    const name = scope.slice(first + 1, last);
    const actions = scope
      .slice(last + 1)
      .split(",")
      .filter((action) => ACTION.test(action));
    if (!RESOURCE_TYPE.test(type) || name === "" || actions.length === 0) continue;
    const key = `${type}:${name}`;
    const entry = merged.get(key) ?? { type, name, actions: [] };
    for (const action of actions) if (!entry.actions.includes(action)) entry.actions.push(action);
    merged.set(key, entry);
  }
  return [...merged.values()];
}

export function formatScope(access: ResourceAccess): string {
  return `${access.type}:${access.name}:${access.actions.join(",")}`;
}

/**
 * The scopes a challenge names for a request, any one of which a token may cover: one per
 * name the repository may be asked for by; none for `/v2/` itself.
 */
export function requiredAccess(request: AccessRequest): ResourceAccess[] {
  if (request.registryResource === "catalog") return [{ type: "registry", name: "catalog", actions: ["*"] }];
  if (request.repository === undefined) return [];
  return (request.scopeNames ?? [request.repository]).map((name) => ({ type: "repository", name, actions: [...request.actions] }));
}

/** Whether `granted` covers every action `needed` asks on its resource. */
export function covers(granted: readonly ResourceAccess[], needed: ResourceAccess): boolean {
  const entry = granted.find((g) => g.type === needed.type && g.name === needed.name);
  return entry !== undefined && needed.actions.every((action) => entry.actions.includes(action));
}
