import type { StorageDriver } from "../storage/driver.js";

interface AccessRecord {
  /** The upstream answered for this repository without credentials: anyone may be served it. */
  public?: boolean;
  /** Viewer key → when the upstream last answered for this repository with that viewer's credentials (ms). */
  confirmed?: Record<string, number>;
}

export type Admission = "public" | "confirmed" | "stale" | "unconfirmed";

/**
 * Who may be served what berth mirrored from one upstream repository (the AlwaysPullImages
 * lesson: a shared cache must not hand one tenant's private image to another). Registries
 * authorize per repository, and so does this record: a repository the upstream served without
 * credentials is public; otherwise a viewer is served its content only while the upstream
 * recently answered for that repository with the viewer's own credentials. One small record
 * per repository, however many digests its manifests name.
 */
export class MirrorVisibility {
  constructor(
    private readonly driver: StorageDriver,
    /** `mirrors/<prefix>`-like root of one upstream's records. */
    private readonly root: string,
    private readonly confirmationTtlMs: number,
  ) {}

  private path(repository: string): string {
    return `${this.root}/${repository}/_access`;
  }

  private async read(repository: string): Promise<AccessRecord> {
    const data = await this.driver.readSmall(this.path(repository));
    if (!data) return {};
    try {
      return JSON.parse(data.toString("utf8")) as AccessRecord;
    } catch {
      return {};
    }
  }

  /** Whether `viewer` may be served the repository's cached content now (`stale`: only while the upstream cannot be asked). */
  async admission(repository: string, viewer: string): Promise<Admission> {
    const record = await this.read(repository);
    if (record.public) return "public";
    const at = record.confirmed?.[viewer];
    if (at === undefined) return "unconfirmed";
    return Date.now() - at < this.confirmationTtlMs ? "confirmed" : "stale";
  }

  /** Records that the upstream answered for the repository with `viewer`'s credentials (anonymously: for anyone). */
  async confirm(repository: string, viewer: string, anonymous: boolean): Promise<void> {
    const record = await this.read(repository);
    if (record.public) return;
    const now = Date.now();
    const at = record.confirmed?.[viewer];
    // A confirmation still fresh for most of its lifetime is not rewritten on every answer.
    if (!anonymous && at !== undefined && now - at < this.confirmationTtlMs / 2) return;
    const next: AccessRecord = anonymous ? { public: true } : { confirmed: { ...record.confirmed, [viewer]: now } };
    await this.driver.writeSmall(this.path(repository), JSON.stringify(next));
  }
}
