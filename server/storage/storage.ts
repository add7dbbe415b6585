import type { StorageConfig } from "../../config/storage-schema.js";
import { BlobHolders } from "./blob-holders.js";
import { BlobStore } from "./blob-store.js";
import type { CollectionGuard } from "./collection-guard.js";
import type { StorageDriver } from "./driver.js";
import { FilesystemDriver } from "./filesystem-driver.js";
import { RepositoryMetadata } from "./repository-metadata.js";
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

/** The storage `storage.driver` names; `guard` when replicas share it (default: this process's own). */
export async function openStorage(config: StorageConfig, guard?: CollectionGuard): Promise<Storage> {
  return config.driver === "s3" ? openS3Storage(config, guard) : openFilesystemStorage(config.root, guard);
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
