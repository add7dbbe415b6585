import type { CredentialLookup, UpstreamCredential } from "./upstream-client.js";
import type { UpstreamEndpoint } from "./upstream-endpoint.js";

/**
 * The cluster tier a node-local berth fetches every upstream through (docs/design.md §9).
 * Each upstream's requests go to the parent, addressed by the registry's host as containerd
 * addresses a mirror (`?ns=HOST`), so the parent routes them to its own upstream of that
 * host, with its URL and credentials; the node authenticates as its node account, found in
 * its credential files under the parent's `HOST[:PORT]` as a registry's credentials are.
 */
export class ParentTier {
  private readonly host: string;

  constructor(
    private readonly url: string,
    private readonly credentials: CredentialLookup,
  ) {
    this.host = new URL(url).host;
  }

  /** Where requests for `registry` go: the parent, naming the registry in each. */
  endpointFor(registry: UpstreamEndpoint): UpstreamEndpoint {
    return { ...registry, url: this.url.replace(/\/+$/, ""), namespace: registry.host };
  }

  /** The node account's credentials for an image of any registry: those keyed by the parent's host. */
  readonly lookup: CredentialLookup = {
    lookup: (image: string): Promise<UpstreamCredential[]> => this.credentials.lookup(`${this.host}/${image.slice(image.indexOf("/") + 1)}`),
  };
}
