export interface BearerChallenge {
  realm: string;
  service: string;
  /** Space-separated scopes the request needs; absent for `/v2/` itself. */
  scope?: string;
  /** RFC 6750 error: `invalid_token` or `insufficient_scope`. */
  error?: "invalid_token" | "insufficient_scope";
}

/** The `WWW-Authenticate` value sending a client to /token (Docker token spec, RFC 6750). */
export function formatBearerChallenge(challenge: BearerChallenge): string {
  const params: [string, string | undefined][] = [
    ["realm", challenge.realm],
    ["service", challenge.service],
    ["scope", challenge.scope],
    ["error", challenge.error],
  ];
  return `Bearer ${params
    .filter((param): param is [string, string] => param[1] !== undefined)
    .map(([name, value]) => `${name}="${value.replace(/["\\]/g, "\\$&")}"`)
    .join(",")}`;
}
