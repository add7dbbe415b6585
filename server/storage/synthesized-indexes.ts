import type { Digest } from "../reference/digest.js";
import type { StorageDriver } from "./driver.js";

/**
 * The indexes berth synthesized, and for which repository: what lets one be served again by
 * digest. Only berth writes these records, so a pushed manifest dressed up as a synthesized
 * index is never taken for one. Collection keeps a recorded index like a cached manifest.
 */
export class SynthesizedIndexes {
  constructor(private readonly driver: StorageDriver) {}

  private path(digest: Digest): string {
    return `synthesized/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}`;
  }

  async record(digest: Digest, repository: string): Promise<void> {
    await this.driver.writeSmall(this.path(digest), JSON.stringify({ repository }));
  }

  /** The repository berth synthesized the index for; undefined for any other digest. */
  async repositoryOf(digest: Digest): Promise<string | undefined> {
    const data = await this.driver.readSmall(this.path(digest));
    if (!data) return undefined;
    try {
      const record = JSON.parse(data.toString("utf8")) as { repository?: unknown };
      return typeof record.repository === "string" ? record.repository : undefined;
    } catch {
      return undefined;
    }
  }

  async forget(digest: Digest): Promise<void> {
    await this.driver.delete(this.path(digest));
  }

  /** Every recorded digest, for collection. */
  async *digests(): AsyncGenerator<string> {
    for (const algorithm of await this.driver.list("synthesized")) {
      for (const prefix of await this.driver.list(`synthesized/${algorithm}`)) {
        for (const hex of await this.driver.list(`synthesized/${algorithm}/${prefix}`)) yield `${algorithm}:${hex}`;
      }
    }
  }
}
