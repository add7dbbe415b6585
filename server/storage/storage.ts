import type { StorageConfig } from "../../config/storage-schema.js";
import { BlobHolders } from "./blob-holders.js";
import { BlobStore } from "./blob-store.js";
import type { StorageDriver } from "./driver.js";
import { FilesystemDriver } from "./filesystem-driver.js";
import { RepositoryMetadata } from "./repository-metadata.js";
import type { ObjectIndex } from "./s3/object-index.js";
import { openS3Storage, type S3Storage } from "./s3/s3-storage.js";
import { SynthesizedIndexes } from "./synthesized-indexes.js";
import { UploadStore } from "./upload-store.js";
import type { Uploads } from "./uploads.js";

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

/** What several processes sharing one store share, when they do (none: a single process). */
export interface SharedStorageState {
  /** With driver s3: the index of the bucket's objects the processes keep each other's up to date. */
  objectIndex?: ObjectIndex;
}

/** The storage `storage.driver` names. */
export async function openStorage(config: StorageConfig, shared: SharedStorageState = {}): Promise<Storage> {
  return config.driver === "s3" ? openS3Storage(config, shared.objectIndex) : openFilesystemStorage(config.root);
}

export async function openFilesystemStorage(root: string): Promise<Storage> {
  const driver = new FilesystemDriver(root);
  await driver.initialise();
  const blobs = new BlobStore(driver);
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
