import type { StorageConfig } from "../../config/storage-schema.js";
import { openS3Storage } from "./s3/s3-storage.js";
import { openFilesystemStorage, type Storage, type StorageSharing } from "./storage.js";

/** The storage `storage.driver` names. */
export async function openStorage(config: StorageConfig, sharing: StorageSharing = {}): Promise<Storage> {
  return config.driver === "s3" ? openS3Storage(config, sharing) : openFilesystemStorage(config.root, sharing.collectionGuard);
}
