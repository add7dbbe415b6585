import type { Digest } from "../reference/digest.js";
import type { StorageDriver } from "../storage/driver.js";

/**
 * Which blobs one upstream itself delivered to berth (and berth verified). The store is shared
 * by every upstream and hosted repository; a blob in it proves nothing about this upstream. A
 * blob this upstream delivered for one repository may be served for another of its repositories
 * once the upstream confirms that repository holds it; any other blob must be fetched from it.
 */
export class DeliveredBlobs {
  constructor(
    private readonly driver: StorageDriver,
    /** `mirrors/<prefix>`: repository names never start with `_`, so `_delivered` cannot collide. */
    private readonly root: string,
  ) {}

  private path(digest: Digest): string {
    return `${this.root}/_delivered/${digest.algorithm}/${digest.hex}`;
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.driver.stat(this.path(digest))) !== undefined;
  }

  async record(digest: Digest): Promise<void> {
    await this.driver.writeSmall(this.path(digest), "");
  }

  /** Forgets a blob that left the store: if it comes back, it comes back from whoever delivers it then. */
  async forget(digest: Digest): Promise<void> {
    await this.driver.delete(this.path(digest));
  }
}
