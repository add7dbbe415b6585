import { BlobHolders } from "./blob-holders.js";
import { BlobStore } from "./blob-store.js";
import type { StorageDriver } from "./driver.js";
import { FilesystemDriver } from "./filesystem-driver.js";
import { RepositoryMetadata } from "./repository-metadata.js";
import { SynthesizedIndexes } from "./synthesized-indexes.js";
import { UploadStore } from "./upload-store.js";

/** Everything berth keeps, built on one driver. */
export interface Storage {
  driver: StorageDriver;
  blobs: BlobStore;
  metadata: RepositoryMetadata;
  uploads: UploadStore;
  /** Which repositories linked each blob: where a mount without `from` looks. */
  holders: BlobHolders;
  /** The indexes berth synthesized from `-$(ARCH)` tags. */
  synthesized: SynthesizedIndexes;
}

export async function openFilesystemStorage(root: string): Promise<Storage> {
  const driver = new FilesystemDriver(root);
  await driver.initialise();
  const blobs = new BlobStore(driver);
  return { driver, blobs, metadata: new RepositoryMetadata(driver), uploads: new UploadStore(driver, blobs), holders: new BlobHolders(driver), synthesized: new SynthesizedIndexes(driver) };
}
