import { BlobHolders } from "./blob-holders.js";
import { BlobStore } from "./blob-store.js";
import type { CollectionGuard } from "./collection-guard.js";
import type { StorageDriver } from "./driver.js";
import { FilesystemDriver } from "./filesystem-driver.js";
import { RepositoryMetadata } from "./repository-metadata.js";
import type { ObjectIndex } from "./s3/object-index.js";
import type { MultipartCollector } from "./s3/multipart-collector.js";
import type { S3Driver } from "./s3/s3-driver.js";
import type { S3Traffic } from "./s3/s3-traffic.js";
import { SynthesizedIndexes } from "./synthesized-indexes.js";
import type { SessionHashes } from "./session-hashes.js";
import type { UploadLocks } from "./upload-locks.js";
import { UploadStore } from "./upload-store.js";
import type { Uploads } from "./uploads.js";

/** What driver s3 adds to a Storage: its traffic counters and the collection of abandoned multipart uploads. */
export interface S3Storage {
  driver: S3Driver;
  traffic: S3Traffic;
  multipart: MultipartCollector;
}

/** Everything berth keeps, built on one driver. */
export interface Storage {
  driver: StorageDriver;
  blobs: BlobStore;
  metadata: RepositoryMetadata;
  uploads: Uploads;
  /** Which repositories linked each blob: where a mount without `from` looks. */
  holders: BlobHolders;
  /** The indexes berth synthesized from `-$(ARCH)` tags. */
  synthesized: SynthesizedIndexes;
  /** With driver s3: its traffic, multipart-upload collection and metrics. */
  s3?: S3Storage;
  /** Lets go of the storage (its lease, timers); the stored content stays. */
  close(): Promise<void>;
}

/**
 * What replicas sharing one bucket use in place of what a single process keeps to itself;
 * each absent part is this process's own.
 */
export interface StorageSharing {
  /** Who may change an upload session at a time (driver s3). */
  uploadLocks?: UploadLocks;
  /** Where a session's running sha256 lives between its chunks (driver s3). */
  sessionHashes?: SessionHashes;
  /** What content collection must spare: digests other replicas read or link. */
  collectionGuard?: CollectionGuard;
  /** The index of the bucket's objects, which the replicas keep up to date for each other (driver s3). */
  objectIndex?: ObjectIndex;
}

export async function openFilesystemStorage(root: string, guard?: CollectionGuard): Promise<Storage> {
  const driver = new FilesystemDriver(root);
  await driver.initialise();
  const blobs = new BlobStore(driver, undefined, guard);
  return {
    driver,
    blobs,
    metadata: new RepositoryMetadata(driver),
    uploads: new UploadStore(driver, blobs),
    holders: new BlobHolders(driver),
    synthesized: new SynthesizedIndexes(driver),
    close: () => driver.close(),
  };
}
