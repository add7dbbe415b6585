import type { CredentialLookup } from "../upstream-client.js";
import { distinctCredentials, type Credential } from "./credential.js";

/**
 * Keyrings tried in order, like kubelet's union of a pod's pull Secrets and the node's
 * config: every credential of the first, then the second's; each set of secrets once.
 */
export class KeyringUnion implements CredentialLookup {
  constructor(readonly keyrings: readonly { lookup(image: string): Promise<Credential[]> }[]) {}

  async lookup(image: string): Promise<Credential[]> {
    const found = await Promise.all(this.keyrings.map((keyring) => keyring.lookup(image)));
    return distinctCredentials(found.flat());
  }
}
