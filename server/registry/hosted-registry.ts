import type { Storage } from "../storage/storage.js";
import { HostedRepository } from "./hosted.js";
import type { Registry, Repository, RepositoryAddress } from "./registry.js";

/** A registry of repositories that berth owns. */
export class HostedRegistry implements Registry {
  constructor(private readonly storage: Storage) {}

  async repository(address: RepositoryAddress): Promise<Repository> {
    return new HostedRepository(address.name, this.storage);
  }

  async catalog(): Promise<string[]> {
    return this.storage.metadata.repositories();
  }
}
