import { setTimeout as delay } from "node:timers/promises";
import { KeyedLock } from "../concurrency/keyed-lock.js";
import type { Logger } from "../log.js";
import { StorageUnavailableError } from "../storage/storage-unavailable-error.js";
import type { HeldSession, UploadLocks } from "../storage/upload-locks.js";
import type { Lease, Leases } from "./leases.js";

/** How long a session's lease outlives a holder that stopped renewing it (a replica killed mid-chunk). */
const LEASE_TTL_MS = 10_000;
/** Longest pause between two attempts at a lease another replica holds. */
const MAX_RETRY_MS = 200;

/**
 * Upload sessions changed by one replica at a time: a lease per session (`upload:<id>`), held
 * and renewed for as long as a chunk, completion or cancellation runs, so two PATCHes to one
 * session on two replicas run one after the other, as they would in one process (the second
 * then finds the session moved on: 416). Each record write is fenced: the holder renews the
 * lease just before it (HeldSession.confirm), so a holder that stalled past the lease's TTL
 * and was taken over writes nothing more. While Redis is down each replica orders only its own
 * tasks, as one process does; the tail checksums and part ETags in the session's record then
 * turn a race between replicas into a failed request, never a wrong byte.
 */
export class ClusterUploadLocks implements UploadLocks {
  readonly shared = true;
  private readonly local = new KeyedLock();

  constructor(
    private readonly leases: Leases,
    private readonly log: Logger,
    private readonly ttlMs = LEASE_TTL_MS,
  ) {}

  run<T>(id: string, task: (held: HeldSession) => Promise<T>): Promise<T> {
    return this.local.run(id, async () => {
      const lease = await this.acquire(id);
      try {
        return await task({ confirm: () => this.confirm(id, lease) });
      } finally {
        await lease?.release();
      }
    });
  }

  settled(): Promise<void> {
    return this.local.settled();
  }

  /** The session's lease, once its holder lets go; undefined while Redis does not answer. */
  private async acquire(id: string): Promise<Lease | undefined> {
    for (let pause = 10; ; pause = Math.min(2 * pause, MAX_RETRY_MS)) {
      let lease: Lease | undefined;
      try {
        lease = await this.leases.acquire(leaseName(id), this.ttlMs);
      } catch (err) {
        this.log.debug({ upload: id, err: (err as Error).message }, "upload session lease unavailable (Redis down): ordering this replica's tasks only");
        return undefined;
      }
      if (lease) {
        lease.keepAlive(this.ttlMs, () => this.log.warn({ upload: id }, "upload session lease lost while a task held it"));
        return lease;
      }
      await delay(pause);
    }
  }

  private async confirm(id: string, lease: Lease | undefined): Promise<void> {
    if (!lease) return;
    let held: boolean;
    try {
      held = await lease.renew(this.ttlMs);
    } catch {
      return; // Redis went down meanwhile: as when it was down at the start
    }
    if (!held) throw new StorageUnavailableError(`upload ${id}: the session's lease expired while this replica held it; another replica may have taken the session over`, 1);
  }
}

function leaseName(id: string): string {
  return `upload:${id}`;
}
