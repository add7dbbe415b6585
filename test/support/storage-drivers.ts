import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { ListMultipartUploadsCommand } from "@aws-sdk/client-s3";
import type { StorageConfig } from "../../config/storage-schema.js";
import { storageSchema } from "../../config/storage-schema.js";
import { openStorage } from "../../server/storage/open-storage.js";
import type { Storage } from "../../server/storage/storage.js";
import { createBucket, rawS3Client, s3StorageConfig, swiftS3 } from "./swift-s3.js";
import { makeTempDir, type TempDir } from "./temp-dir.js";

/** Every storage driver: storage tests, and the suites that run berth, run once per driver. */
export const STORAGE_DRIVERS = ["filesystem", "s3"] as const;
export type StorageDriverKind = (typeof STORAGE_DRIVERS)[number];

/**
 * The driver suites that run berth use: filesystem, or s3 when the run sets
 * BERTH_TEST_STORAGE=s3 (the `on-s3.test.ts` files do, to run a whole suite again on S3) or
 * BERTH_TEST_STORAGE=replicas (see testReplicas()).
 */
export function testStorageDriver(): StorageDriverKind {
  return process.env.BERTH_TEST_STORAGE === "s3" || testReplicas() ? "s3" : "filesystem";
}

/**
 * Whether the suites that run berth run it as replicas on one bucket (BERTH_TEST_STORAGE=replicas,
 * set by the `on-replicas.test.ts` files): startHostedApp() then serves three of them.
 */
export function testReplicas(): boolean {
  return process.env.BERTH_TEST_STORAGE === "replicas";
}

/** A store of one driver kind, for a test. */
export interface TestStorage {
  readonly kind: StorageDriverKind;
  readonly storage: Storage;
  /** The local root: the whole store for filesystem; the spool and keys for s3. */
  readonly root: string;
  /** berth's `storage` config section for this store. */
  readonly config: Record<string, unknown>;
  /**
   * Writes in flight that no finished operation may leave behind: temp files for filesystem;
   * spool files and unfinished multipart uploads for s3.
   */
  leftovers(): Promise<string[]>;
  /** The same store opened again, as after a restart; this one is closed. */
  reopen(): Promise<TestStorage>;
  /** Closes the store and removes the local root (an S3 bucket is left to the endpoint's teardown). */
  close(): Promise<void>;
}

/**
 * berth's `storage` config for a fresh store of `kind` rooted at `root`: for s3 a new bucket
 * on the test process's Swift. `s3` overrides `storage.s3` keys.
 */
export async function storageConfigFor(kind: StorageDriverKind, root: string, s3: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  if (kind === "filesystem") return { driver: "filesystem", root };
  const endpoint = await swiftS3();
  return { driver: "s3", root, s3: s3StorageConfig(endpoint, await createBucket(endpoint), s3) };
}

export async function openTestStorage(kind: StorageDriverKind, s3: Record<string, unknown> = {}): Promise<TestStorage> {
  const dir = await makeTempDir(`storage-${kind}`);
  try {
    return await open(kind, dir, await storageConfigFor(kind, dir.path, s3));
  } catch (err) {
    await dir.remove();
    throw err;
  }
}

async function open(kind: StorageDriverKind, dir: TempDir, config: Record<string, unknown>): Promise<TestStorage> {
  const parsed: StorageConfig = storageSchema.parse(config);
  const storage = await openStorage(parsed);
  return {
    kind,
    storage,
    root: dir.path,
    config,
    leftovers: async () => {
      if (kind === "filesystem") return (await readdir(join(dir.path, "_tmp"))).map((name) => `_tmp/${name}`);
      return s3Leftovers(parsed.s3!.bucket, [dir.path]);
    },
    reopen: async () => {
      await storage.close();
      return open(kind, dir, config);
    },
    close: async () => {
      await storage.close();
      await dir.remove();
    },
  };
}

/**
 * What an S3 store's finished operations may not leave behind: spool files under each local
 * root of the processes on `bucket`, and the bucket's unfinished multipart uploads.
 */
export async function s3Leftovers(bucket: string, roots: readonly string[]): Promise<string[]> {
  // Upload sessions keep local copies of their tails in spool/uploads/: session state, not writes in flight.
  const spools = await Promise.all(roots.map(async (root) => (await readdir(join(root, "spool"), { withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(root, "spool", e.name))));
  const spool = spools.flat();
  const client = rawS3Client(await swiftS3());
  try {
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    return [...spool, ...(listed.Uploads ?? []).map((u) => `multipart upload on ${u.Key}`)];
  } finally {
    client.destroy();
  }
}
