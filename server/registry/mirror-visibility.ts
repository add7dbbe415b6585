import type { Digest } from "../reference/digest.js";
import type { StorageDriver } from "../storage/driver.js";

interface VisibilityRecord {
  /** Fetched without credentials: anyone may be served it. */
  public?: boolean;
  /** Principal key → when that principal's own upstream access was last confirmed (ms). */
  confirmed?: Record<string, number>;
}

export type Admission = "public" | "confirmed" | "stale" | "unconfirmed";

/**
 * Who may be served a piece of mirrored content (the AlwaysPullImages lesson: a shared cache
 * must not hand one tenant's private image to another). Content fetched anonymously is
 * public; otherwise a principal is served it only while its own upstream access was
 * confirmed recently, by fetching it or by a HEAD with its own credentials.
 */
export class MirrorVisibility {
  constructor(
    private readonly driver: StorageDriver,
    /** `mirrors/<prefix>`-like root of one upstream's records. */
    private readonly root: string,
    private readonly confirmationTtlMs: number,
  ) {}

  private path(repository: string, digest: Digest): string {
    return `${this.root}/${repository}/_visibility/${digest.algorithm}-${digest.hex}`;
  }

  private async read(repository: string, digest: Digest): Promise<VisibilityRecord> {
    const data = await this.driver.readSmall(this.path(repository, digest));
    if (!data) return {};
    try {
      return JSON.parse(data.toString("utf8")) as VisibilityRecord;
    } catch {
      return {};
    }
  }

  /** Whether `principal` may be served the content now (`stale`: only while the upstream cannot be asked). */
  async admission(repository: string, digest: Digest, principal: string): Promise<Admission> {
    const record = await this.read(repository, digest);
    if (record.public) return "public";
    const at = record.confirmed?.[principal];
    if (at === undefined) return "unconfirmed";
    return Date.now() - at < this.confirmationTtlMs ? "confirmed" : "stale";
  }

  /** Records that the upstream served this content to `principal` (anonymously: to anyone). */
  async record(repository: string, digests: readonly Digest[], principal: string, anonymous: boolean): Promise<void> {
    for (const digest of digests) {
      const record = await this.read(repository, digest);
      if (record.public) continue;
      const next: VisibilityRecord = anonymous ? { public: true } : { confirmed: { ...record.confirmed, [principal]: Date.now() } };
      await this.driver.writeSmall(this.path(repository, digest), JSON.stringify(next));
    }
  }
}
