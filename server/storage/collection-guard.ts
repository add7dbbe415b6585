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

/** One process: the collector sees every reader itself, and is always the one that collects. */
export class LocalCollectionGuard implements CollectionGuard {
  constructor(private readonly usage: BlobUsage) {}

  async pin(): Promise<boolean> {
    return true;
  }

  async hold(): Promise<{ kept: boolean; release: () => void }> {
    return { kept: true, release: () => {} };
  }

  async placed(): Promise<void> {}

  async turn(): Promise<CollectionTurn> {
    return {
      doom: async () => {},
      condemn: async (digest) => !this.usage.inUse(digest),
      removed: async () => {},
      end: async () => {},
    };
  }

  async close(): Promise<void> {}
}
