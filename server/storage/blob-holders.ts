import type { Digest } from "../reference/digest.js";
import type { StorageDriver } from "./driver.js";

/** Most repositories one blob's record names: it is a hint, not the truth. */
const MAX_HOLDERS = 32;

/**
 * Which repositories (by policy name) linked a blob, newest last: where a mount without `from`
 * looks. The links are the truth: a repository that unlinked the blob since is checked and
 * skipped, and a name lost to a concurrent write only turns that mount into an upload.
 */
export class BlobHolders {
  constructor(private readonly driver: StorageDriver) {}

  private path(digest: Digest): string {
    return `holders/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}`;
  }

  async list(digest: Digest): Promise<string[]> {
    const data = await this.driver.readSmall(this.path(digest));
    if (!data) return [];
    try {
      const names = JSON.parse(data.toString("utf8")) as unknown;
      return Array.isArray(names) ? names.filter((name): name is string => typeof name === "string") : [];
    } catch {
      return [];
    }
  }

  async add(digest: Digest, policyName: string): Promise<void> {
    const names = await this.list(digest);
    if (names.includes(policyName)) return;
    await this.driver.writeSmall(this.path(digest), JSON.stringify([...names, policyName].slice(-MAX_HOLDERS)));
  }

  async forget(digest: Digest): Promise<void> {
    await this.driver.delete(this.path(digest));
  }
}
