import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { StorageConfig } from "../../../config/storage-schema.js";
import type { S3MetricSources } from "../../metrics/s3-metrics.js";
import { BlobHolders } from "../blob-holders.js";
import { BlobStore } from "../blob-store.js";
import { RepositoryMetadata } from "../repository-metadata.js";
import { RootLease } from "../root-lease.js";
import type { S3Storage, Storage, StorageSharing } from "../storage.js";
import { SynthesizedIndexes } from "../synthesized-indexes.js";
import { MultipartCollector } from "./multipart-collector.js";
import { LocalObjectIndex } from "./object-index.js";
import { S3Bucket } from "./s3-bucket.js";
import { createS3Client } from "./s3-client.js";
import { S3Driver } from "./s3-driver.js";
import { S3Health } from "./s3-health.js";
import { S3Traffic } from "./s3-traffic.js";
import { S3UploadStore } from "./s3-upload-store.js";
import { Spool } from "./spool.js";

/**
 * Storage on an S3 bucket. The local root keeps what is per process (the spool, token signing
 * keys) under the root's lease; the bucket holds the store itself.
 */
export async function openS3Storage(config: StorageConfig, sharing: StorageSharing = {}): Promise<Storage & { s3: S3Storage }> {
  const s3 = config.s3!;
  await mkdir(config.root, { recursive: true, mode: 0o700 });
  const lease = await RootLease.acquire(config.root);
  try {
    const traffic = new S3Traffic();
    const bucket = new S3Bucket(createS3Client(s3, traffic), s3.bucket, s3.prefix, { timeoutMs: s3.timeout, maxAttempts: s3.maxAttempts }, new S3Health(), traffic);
    const driver = new S3Driver(bucket, sharing.objectIndex ?? new LocalObjectIndex(), new Spool(s3.spool.dir ?? join(config.root, "spool"), s3.spool.maxSize), s3.partSize);
    await driver.initialise();
    const blobs = new BlobStore(driver, undefined, sharing.collectionGuard);
    const uploads = new S3UploadStore(driver, blobs, sharing.uploadLocks, sharing.sessionHashes);
    return {
      driver,
      blobs,
      metadata: new RepositoryMetadata(driver),
      uploads,
      holders: new BlobHolders(driver),
      synthesized: new SynthesizedIndexes(driver),
      s3: { driver, traffic, multipart: new MultipartCollector(driver, s3.abandonedUploadAge) },
      close: async () => {
        driver.close();
        await uploads.close();
        await lease.release();
      },
    };
  } catch (err) {
    await lease.release();
    throw err;
  }
}

/** What the S3 metrics read, at each scrape. */
export function s3MetricSources(s3: S3Storage): S3MetricSources {
  return {
    requests: () => s3.traffic.requests,
    sentBytes: () => s3.traffic.sentBytes,
    copiedBytes: () => s3.traffic.copiedBytes,
    spoolBytes: () => s3.driver.spool.usedBytes,
    failing: () => s3.driver.bucket.health.failing !== undefined,
    multipart: () => s3.multipart.last && { left: s3.multipart.last.left, leftBytes: s3.multipart.last.leftBytes, abortedTotal: s3.multipart.abortedTotal },
  };
}
