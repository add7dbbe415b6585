import type { Digest } from "../reference/digest.js";
import type { BlobUsage } from "./blob-usage.js";

/** Why this process does not collect now. */
export type CollectionSkip = "not-leader" | "coordination-down" | "coordination-recovering";

/**
 * What keeps content collection from removing a blob someone uses, when the collector cannot
 * see every user: readers and writers pin the digests they use, and the collector asks for
 * each candidate's condemnation before deleting it. One process needs only its own readers
 * (LocalCollectionGuard); replicas sharing a bucket pin in Redis and collect on one leader
 * (server/coordination/shared-collection-guard.ts).
 */
export interface CollectionGuard {
  /**
   * Pins a digest before its blob is looked at, linked or read: a collection that has not
   * condemned it yet spares it. False when the blob is being, or was lately, removed by
   * collection (and not stored again since): the caller treats it as absent.
   */
  pin(digest: Digest): Promise<boolean>;
  /** Keeps a digest pinned until `release` is called (a read in progress). */
  hold(digest: Digest): Promise<{ kept: boolean; release: () => void }>;
  /** The blob was just stored (again): it is no longer a removed one. */
  placed(digest: Digest): Promise<void>;
  /** This process's turn to collect, or why it has none now. */
  turn(): Promise<CollectionTurn | CollectionSkip>;
  close(): Promise<void>;
}

/**
 * One collection run's right to delete. Candidates are doomed first (after the scan that chose
 * them), then each is condemned just before it is deleted; a digest pinned or linked since it
 * was doomed, or while the scan ran, is spared.
 */
export interface CollectionTurn {
  doom(digests: readonly Digest[]): Promise<void>;
  /** True: delete it now, then call `removed`. False: spare it. Throws CollectionTurnLostError when the turn is lost. */
  condemn(digest: Digest): Promise<boolean>;
  removed(digest: Digest): Promise<void>;
  end(): Promise<void>;
}

/** A turn ended under the collector: its lease went to another replica, or Redis stopped answering. */
export class CollectionTurnLostError extends Error {
  constructor(readonly reason: CollectionSkip) {
    super(`the collection turn was lost (${reason})`);
  }
}

/**
 * One process: the collector sees every reader itself, and is always the one that collects.
 * A digest pinned during a run (about to be linked, read or stored again) is spared: the
 * run's scan may have missed the link that follows.
 */
export class LocalCollectionGuard implements CollectionGuard {
  /** Digests pinned since the current run began; undefined between runs. */
  private pinnedInRun?: Set<string>;

  constructor(private readonly usage: BlobUsage) {}

  async pin(digest: Digest): Promise<boolean> {
    this.pinnedInRun?.add(digest.toString());
    return true;
  }

  async hold(digest: Digest): Promise<{ kept: boolean; release: () => void }> {
    this.pinnedInRun?.add(digest.toString());
    return { kept: true, release: () => {} };
  }

  async placed(digest: Digest): Promise<void> {
    this.pinnedInRun?.add(digest.toString());
  }

  async turn(): Promise<CollectionTurn> {
    const pinned = new Set<string>();
    this.pinnedInRun = pinned;
    return {
      doom: async () => {},
      condemn: async (digest) => !pinned.has(digest.toString()) && !this.usage.inUse(digest),
      removed: async () => {},
      end: async () => {
        if (this.pinnedInRun === pinned) this.pinnedInRun = undefined;
      },
    };
  }

  async close(): Promise<void> {}
}
