import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { afterEach, beforeEach, describe, it } from "node:test";
import { ListMultipartUploadsCommand } from "@aws-sdk/client-s3";
import { storageSchema } from "../../config/storage-schema.js";
import { openStorage } from "../../server/storage/open-storage.js";
import type { Storage } from "../../server/storage/storage.js";
import { openTestStorage, type TestStorage } from "../support/storage-drivers.js";
import { rawS3Client, swiftS3 } from "../support/swift-s3.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

const MiB = 1024 * 1024;

describe("S3 multipart collection with two processes on one bucket", () => {
  let first: TestStorage;
  let secondDir: TempDir;
  let second: Storage;

  beforeEach(async () => {
    first = await openTestStorage("s3", { partSize: "5MiB" });
    secondDir = await makeTempDir("second-replica");
    const config = first.config as { s3: Record<string, unknown> };
    second = await openStorage(storageSchema.parse({ ...config, root: secondDir.path, s3: { ...config.s3, abandonedUploadAge: "0s" } }));
  });
  afterEach(async () => {
    await second?.close();
    await secondDir?.remove();
    await first?.close();
  });

  it("leaves alone, in its collection, the multipart upload of a session another process started after it walked the bucket", async () => {
    const { id } = await first.storage.uploads.create("team/app");
    await first.storage.uploads.append(id, 0, Readable.from([randomBytes(5 * MiB + 1)]));
    const raw = rawS3Client(await swiftS3());
    try {
      const bucket = (first.config as { s3: { bucket: string } }).s3.bucket;
      // Swift lists a new multipart upload after a moment.
      for (let i = 0; i < 50 && ((await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).length < 1; i++) await delay(200);
      const report = await second.s3!.multipart.run();
      assert.equal(report.found, 1);
      assert.equal(report.abandoned, 0);
      assert.equal(((await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).length, 1);
    } finally {
      raw.destroy();
    }
    await first.storage.uploads.cancel(id);
  });
});
