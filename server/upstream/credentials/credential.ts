import { inspect } from "node:util";
import type { UpstreamCredential } from "../upstream-client.js";

export interface CredentialSecrets {
  username?: string;
  password?: string;
  identityToken?: string;
  registryToken?: string;
}

const REDACTED = "[redacted]";

/**
 * One upstream credential and where it came from. The secrets are readable as properties
 * but are not own enumerable fields, so spreading, `JSON.stringify`, `toString` and
 * `util.inspect` (console, pino) show only the source, the username and which secrets are set.
 */
export class Credential implements UpstreamCredential {
  readonly #password?: string;
  readonly #identityToken?: string;
  readonly #registryToken?: string;
  readonly username?: string;

  constructor(
    secrets: CredentialSecrets,
    readonly source: string,
  ) {
    if (secrets.username !== undefined) this.username = secrets.username;
    this.#password = secrets.password;
    this.#identityToken = secrets.identityToken;
    this.#registryToken = secrets.registryToken;
  }

  get password(): string | undefined {
    return this.#password;
  }

  get identityToken(): string | undefined {
    return this.#identityToken;
  }

  get registryToken(): string | undefined {
    return this.#registryToken;
  }

  /** True when it carries nothing to authenticate with (e.g. a config.json entry kept for a credsStore). */
  get isEmpty(): boolean {
    return !this.username && !this.#password && !this.#identityToken && !this.#registryToken;
  }

  /** True when both would authenticate identically, whatever their sources. */
  sameSecretsAs(other: Credential): boolean {
    return (
      this.username === other.username &&
      this.#password === other.#password &&
      this.#identityToken === other.#identityToken &&
      this.#registryToken === other.#registryToken
    );
  }

  toJSON(): Record<string, string> {
    const shown: Record<string, string> = { source: this.source };
    if (this.username !== undefined) shown.username = this.username;
    if (this.#password !== undefined) shown.password = REDACTED;
    if (this.#identityToken !== undefined) shown.identityToken = REDACTED;
    if (this.#registryToken !== undefined) shown.registryToken = REDACTED;
    return shown;
  }

  toString(): string {
    return `credential from ${this.source}`;
  }

  [inspect.custom](): string {
    return `Credential ${JSON.stringify(this.toJSON())}`;
  }
}

/** The credentials in order, each set of secrets once: the first source wins. */
export function distinctCredentials(credentials: readonly Credential[]): Credential[] {
  return credentials.filter((credential, i) => credentials.findIndex((other) => other.sameSecretsAs(credential)) === i);
}
