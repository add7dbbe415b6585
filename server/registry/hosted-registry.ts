import type { Digest } from "../reference/digest.js";
import type { Storage } from "../storage/storage.js";
import { HostedRepository } from "./hosted.js";
import type { Registry, RepositoryAddress, RepositoryRoute } from "./registry.js";

/** A registry of repositories that berth owns. */
export class HostedRegistry implements Registry {
  constructor(private readonly storage: Storage) {}

  async route(address: RepositoryAddress): Promise<RepositoryRoute> {
    return { policyName: address.name, scopeNames: [address.name], open: async () => new HostedRepository(address.name, this.storage) };
  }

  repositoriesHolding(digest: Digest): Promise<string[]> {
    return this.storage.holders.list(digest);
  }

  async catalog(): Promise<string[]> {
    return this.storage.metadata.repositories();
  }
}
