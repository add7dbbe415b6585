import type { Digest } from "../reference/digest.js";
import type { StorageDriver } from "./driver.js";

const ACCESS_RECORD = "cache/last-access.json";

/**
 * Which blobs are being read right now, and when each was last read: what cache eviction
 * needs to pick the least recently used blob and never one that is being served. Access
 * times live in memory and are saved now and then; a blob without one counts as read when
 * it was written.
 */
export class BlobUsage {
  private readonly readers = new Map<string, number>();
  private readonly lastAccess = new Map<string, number>();

  constructor(private readonly driver: StorageDriver) {}

  async load(): Promise<void> {
    const data = await this.driver.readSmall(ACCESS_RECORD);
    if (!data) return;
    try {
      for (const [digest, time] of Object.entries(JSON.parse(data.toString("utf8")) as Record<string, number>)) {
        if (typeof time === "number" && !this.lastAccess.has(digest)) this.lastAccess.set(digest, time);
      }
    } catch {
      // A torn or foreign record only costs access history; it is rewritten on the next save.
    }
  }

  async save(): Promise<void> {
    await this.driver.writeSmall(ACCESS_RECORD, JSON.stringify(Object.fromEntries(this.lastAccess)));
  }

  /** Marks a read as started; the returned function marks it finished. */
  opened(digest: Digest): () => void {
    const key = digest.toString();
    this.readers.set(key, (this.readers.get(key) ?? 0) + 1);
    this.lastAccess.set(key, Date.now());
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      const left = (this.readers.get(key) ?? 1) - 1;
      if (left <= 0) this.readers.delete(key);
      else this.readers.set(key, left);
    };
  }

  inUse(digest: Digest): boolean {
    return this.readers.has(digest.toString());
  }

  lastRead(digest: Digest): number | undefined {
    return this.lastAccess.get(digest.toString());
  }

  forget(digest: Digest): void {
    this.lastAccess.delete(digest.toString());
  }
}
