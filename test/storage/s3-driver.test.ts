import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { afterEach, beforeEach, describe, it } from "node:test";
import { CreateMultipartUploadCommand, HeadObjectCommand, ListMultipartUploadsCommand, PutObjectCommand, UploadPartCommand, type S3Client } from "@aws-sdk/client-s3";
import { Digest } from "../../server/reference/digest.js";
import { BlobStore, DigestMismatchError } from "../../server/storage/blob-store.js";
import { RepositoryMetadata } from "../../server/storage/repository-metadata.js";
import type { S3Storage } from "../../server/storage/storage.js";
import { StorageUnavailableError } from "../../server/storage/storage-unavailable-error.js";
import { FaultProxy } from "../support/fault-proxy.js";
import { openTestStorage, type TestStorage } from "../support/storage-drivers.js";
import { rawS3Client, swiftS3 } from "../support/swift-s3.js";

const MiB = 1024 * 1024;
const PART = 5 * MiB;
const sha256 = (data: Buffer) => Digest.of("sha256", data);

/** Requests of each S3 operation berth sent since `before` (a snapshot of the counters), readiness probes aside. */
function requestsSince(s3: S3Storage, before: Map<string, number>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [operation, count] of s3.traffic.requests) {
    if (operation !== "Probe" && count !== (before.get(operation) ?? 0)) counts[operation] = count - (before.get(operation) ?? 0);
  }
  return counts;
}

/** A source that sends `first`, waits for `go`, then sends `rest`. */
function pausedSource(first: Buffer, rest: Buffer, go: Promise<void>): Readable {
  return Readable.from(
    (async function* () {
      yield first;
      await go;
      yield rest;
    })(),
  );
}

describe("S3 driver (on Swift's s3api)", () => {
  let store: TestStorage;
  let s3: S3Storage;
  let raw: S3Client;
  let bucket: string;

  beforeEach(async () => {
    store = await openTestStorage("s3", { partSize: "5MiB" });
    s3 = store.storage.s3!;
    raw = rawS3Client(await swiftS3());
    bucket = (store.config.s3 as { bucket: string }).bucket;
  });
  afterEach(async () => {
    raw.destroy();
    await store.close();
  });

  const visible = async (path: string) => raw.send(new HeadObjectCommand({ Bucket: bucket, Key: path })).then(() => true, () => false);
  const multipartUploads = async () => (await raw.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];

  it("writes a blob whose digest is known as a multipart upload onto its final key, visible only once the digest verified, with no copy", async () => {
    const data = randomBytes(3 * PART + 1234);
    const digest = sha256(data);
    let go!: () => void;
    const ingesting = store.storage.blobs.ingest(pausedSource(data.subarray(0, 2 * PART + 10), data.subarray(2 * PART + 10), new Promise((resolve) => (go = resolve))), { expected: digest });
    for (let i = 0; i < 400 && (s3.traffic.requests.get("UploadPart") ?? 0) < 2; i++) await delay(50);
    for (let i = 0; i < 50 && (await multipartUploads()).length === 0; i++) await delay(200);
    assert.deepEqual((await multipartUploads()).map((u) => u.Key), [BlobStore.path(digest)], "parts go straight to the final key");
    assert.equal(await visible(BlobStore.path(digest)), false, "nothing is visible before the digest verified");
    go();
    await ingesting;
    assert.equal(await visible(BlobStore.path(digest)), true);
    assert.ok(data.equals((await store.storage.blobs.read(digest))!));
    assert.equal(s3.traffic.copiedBytes, 0);
    assert.equal(s3.traffic.requests.get("CompleteMultipartUpload"), 1);
    assert.equal(s3.traffic.requests.get("UploadPart"), 4);
    assert.deepEqual(await store.leftovers(), []);
  });

  it("aborts the multipart upload of content that fails its digest, leaving nothing in the bucket or the spool", async () => {
    const data = randomBytes(3 * PART);
    const wrong = sha256(Buffer.from("something else"));
    await assert.rejects(store.storage.blobs.ingest(Readable.from([data]), { expected: wrong }), DigestMismatchError);
    assert.ok((s3.traffic.requests.get("UploadPart") ?? 0) >= 2, "parts were sent while the bytes arrived");
    assert.equal(await visible(BlobStore.path(wrong)), false);
    assert.equal(await visible(BlobStore.path(sha256(data))), false);
    assert.deepEqual(await store.leftovers(), []);
  });

  it("writes a blob smaller than a part, and an empty one, with a single PutObject each", async () => {
    const before = new Map(s3.traffic.requests);
    for (const data of [randomBytes(PART - 1), Buffer.alloc(0)]) {
      await store.storage.blobs.ingest(Readable.from([data]), { expected: sha256(data) });
      assert.equal(await store.storage.blobs.size(sha256(data)), data.length);
    }
    const { HeadObject: _lookups, ...writes } = requestsSince(s3, before);
    assert.deepEqual(writes, { PutObject: 2 });
  });

  it("never writes over a stored blob: the same bytes pushed again and concurrently complete one multipart upload", async () => {
    const data = randomBytes(2 * PART + 7);
    const before = new Map(s3.traffic.requests);
    await Promise.all([1, 2, 3].map(() => store.storage.blobs.ingest(Readable.from([data]), { expected: sha256(data) })));
    await store.storage.blobs.ingest(Readable.from([data]), { expected: sha256(data) });
    const requests = requestsSince(s3, before);
    assert.equal(requests.CompleteMultipartUpload, 1);
    assert.equal(requests.PutObject, undefined);
    assert.deepEqual(await store.leftovers(), []);
  });

  it("keeps chunks under 5 MiB as tail objects joined to the next part: 30 chunks of 1 MiB send under 3x the blob's bytes, with no LIST", async () => {
    const data = randomBytes(30 * MiB + 77);
    const uploads = store.storage.uploads;
    const { id } = await uploads.create("team/app");
    for (let offset = 0; offset < data.length; offset += MiB) await uploads.append(id, offset, Readable.from([data.subarray(offset, offset + MiB)]));
    await uploads.complete(id, sha256(data));
    assert.ok(data.equals((await readAll(store.storage.blobs, sha256(data)))!));
    const moved = s3.traffic.sentBytes + s3.traffic.copiedBytes;
    assert.ok(moved <= 3 * data.length, `${moved} bytes moved for a blob of ${data.length}`);
    assert.equal(s3.traffic.requests.get("ListObjectsV2"), 1, "the one walk that loads the index at start");
    assert.deepEqual(await uploads.ids(), []);
    assert.deepEqual(await store.leftovers(), []);
  });

  it("uploads a large chunk's full parts while it still arrives, and keeps a remainder under 5 MiB as the tail of the next part", async () => {
    const data = randomBytes(3 * PART + 2 * MiB + 4 * MiB);
    const uploads = store.storage.uploads;
    const { id } = await uploads.create("team/app");
    const first = data.subarray(0, 3 * PART + 2 * MiB);
    let go!: () => void;
    const appending = uploads.append(id, 0, pausedSource(first.subarray(0, 2 * PART + 1), first.subarray(2 * PART + 1), new Promise((resolve) => (go = resolve))));
    for (let i = 0; i < 400 && (s3.traffic.requests.get("UploadPart") ?? 0) < 2; i++) await delay(50);
    assert.equal(s3.traffic.requests.get("UploadPart"), 2, "two full parts went up before the chunk ended");
    go();
    await appending;
    assert.equal(s3.traffic.requests.get("UploadPart"), 3);
    assert.deepEqual(await store.storage.driver.list(`uploads/${id}/tail`), [(3 * PART).toString().padStart(16, "0")], "the 2 MiB remainder is the tail");
    await uploads.append(id, first.length, Readable.from([data.subarray(first.length)]));
    assert.equal(s3.traffic.requests.get("UploadPart"), 4, "the tail and the next chunk's first 3 MiB make one part");
    assert.deepEqual(await store.storage.driver.list(`uploads/${id}/tail`), [(4 * PART).toString().padStart(16, "0")], "its last 1 MiB is the new tail");
    await uploads.complete(id, sha256(data));
    assert.ok(data.equals((await readAll(store.storage.blobs, sha256(data)))!));
    assert.deepEqual(await store.leftovers(), []);
  });

  it("writes a ?digest= push that arrives whole straight onto its key: no session multipart upload, no copy", async () => {
    const data = randomBytes(2 * PART + 1);
    const { id } = await store.storage.uploads.create("team/app");
    await store.storage.uploads.complete(id, sha256(data), Readable.from([data]));
    assert.equal(await store.storage.blobs.size(sha256(data)), data.length);
    assert.equal(s3.traffic.copiedBytes, 0);
    assert.deepEqual(await store.storage.uploads.ids(), []);
  });

  it("serves warm metadata, tags and small blobs from memory: no S3 request", async () => {
    const metadata = new RepositoryMetadata(store.storage.driver, "mirrors/docker.io");
    const manifest = Buffer.from('{"schemaVersion":2}');
    const digest = await store.storage.blobs.ingestBuffer(manifest);
    await metadata.linkManifest("library/app", digest, { mediaType: "application/vnd.oci.image.manifest.v1+json", size: manifest.length });
    await metadata.setTag("library/app", "v1", digest);
    const before = new Map(s3.traffic.requests);
    for (let i = 0; i < 3; i++) {
      assert.ok((await metadata.tagRecord("library/app", "v1"))?.digest.equals(digest));
      assert.ok(await metadata.hasManifest("library/app", digest));
      assert.ok(manifest.equals((await store.storage.blobs.read(digest))!));
      assert.deepEqual(await metadata.tags("library/app"), ["v1"]);
      assert.equal(await metadata.hasManifests("library/app"), true);
    }
    assert.deepEqual(requestsSince(s3, before), {});
  });

  it("knows after a restart what the bucket holds, from one walk", async () => {
    const metadata = new RepositoryMetadata(store.storage.driver);
    const digest = await store.storage.blobs.ingestBuffer(Buffer.from("config"));
    await metadata.linkBlob("team/app", digest);
    await metadata.setTag("team/app", "v1", digest);
    store = await store.reopen();
    s3 = store.storage.s3!;
    const reopened = new RepositoryMetadata(store.storage.driver);
    assert.deepEqual(await reopened.tags("team/app"), ["v1"]);
    assert.equal(await reopened.hasBlob("team/app", digest), true);
    assert.equal(await store.storage.blobs.size(digest), 6);
    assert.deepEqual(requestsSince(s3, new Map()), { ListObjectsV2: 1 }, "the walk that loads the index; nothing else");
  });

  it("keeps every byte of an object it opened for a reader that comes a while later", async () => {
    const bytes = randomBytes(6 * 1024 * 1024 + 3);
    const digest = await store.storage.blobs.ingestBuffer(bytes);
    store = await store.reopen(); // nothing in memory: the bytes come from S3
    const opened = await store.storage.driver.open(`blobs/sha256/${digest.hex.slice(0, 2)}/${digest.hex}`);
    assert.ok(opened);
    await delay(300);
    const chunks: Buffer[] = [];
    for await (const chunk of opened.stream as AsyncIterable<Buffer>) chunks.push(chunk);
    assert.equal(Digest.of("sha256", Buffer.concat(chunks)).toString(), digest.toString());
  });

  it("adds to its index, at reconciliation, a key a listing left out, but never one it deleted", async () => {
    const metadata = new RepositoryMetadata(store.storage.driver);
    const digest = sha256(Buffer.from("manifest"));
    await metadata.setTag("team/app", "deleted", digest);
    await metadata.deleteTag("team/app", "deleted");
    await raw.send(new PutObjectCommand({ Bucket: bucket, Key: "repositories/team/app/_tags/missed", Body: digest.toString() }));
    assert.deepEqual(await metadata.tags("team/app"), [], "the index does not know of the key written behind its back");
    for (let i = 0; i < 50 && (await s3.driver.reconcile()) === 0; i++) await delay(200);
    assert.deepEqual(await metadata.tags("team/app"), ["missed"]);
  });

  it("aborts abandoned multipart uploads, checks that the abort took, and leaves the ones a write or an upload session owns", async () => {
    const abandoned = BlobStore.path(sha256(Buffer.from("crashed fill")));
    const crashed = await raw.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: abandoned }));
    await raw.send(new UploadPartCommand({ Bucket: bucket, Key: abandoned, UploadId: crashed.UploadId, PartNumber: 1, Body: randomBytes(1000) }));
    const writing = await store.storage.driver.createPending({ target: BlobStore.path(sha256(Buffer.from("being written"))) });
    writing.stream.write(randomBytes(PART + 1));
    for (let i = 0; i < 400 && (s3.traffic.requests.get("UploadPart") ?? 0) < 1; i++) await delay(50);
    const { id } = await store.storage.uploads.create("team/app");
    await store.storage.uploads.append(id, 0, Readable.from([randomBytes(PART + 1)]));
    // Swift lists a new multipart upload after a moment.
    for (let i = 0; i < 50 && (await multipartUploads()).length < 3; i++) await delay(200);
    assert.equal((await multipartUploads()).length, 3);

    const report = await s3.multipart.run();
    assert.deepEqual({ ...report }, { found: 3, abandoned: 1, abandonedBytes: 1000, aborted: 1, left: 0, leftBytes: 0 });
    assert.equal((await multipartUploads()).length, 2);
    await writing.discard();
    await store.storage.uploads.cancel(id);
    assert.deepEqual(await store.leftovers(), []);
  });
});

describe("S3 driver when S3 fails", () => {
  let proxy: FaultProxy;
  let store: TestStorage;

  beforeEach(async () => {
    proxy = await FaultProxy.start((await swiftS3()).endpoint);
    store = await openTestStorage("s3", { endpoint: proxy.url, timeout: "1s", connectTimeout: "1s", maxAttempts: 2 });
  });
  afterEach(async () => {
    await store.close();
    await proxy.close();
  });

  for (const mode of ["refuse", "stall"] as const) {
    it(`raises StorageUnavailableError (503 + Retry-After) within its timeouts when S3 ${mode === "refuse" ? "resets connections" : "takes connections and never answers"}, and readiness follows`, async () => {
      await store.storage.driver.probeWritable();
      proxy.set(mode);
      const started = Date.now();
      await assert.rejects(store.storage.blobs.size(sha256(Buffer.from("not in the index"))), StorageUnavailableError);
      await assert.rejects(store.storage.driver.writeSmall("repositories/team/app/_tags/v1", "x"), StorageUnavailableError);
      assert.ok(Date.now() - started < 10_000, `failed after ${Date.now() - started} ms`);
      await assert.rejects(store.storage.driver.probeWritable(), StorageUnavailableError);
      proxy.set("forward");
      let ready = false;
      for (let i = 0; i < 100 && !ready; i++) {
        ready = await store.storage.driver.probeWritable().then(() => true, () => false);
        if (!ready) await delay(100);
      }
      assert.ok(ready, "ready again once S3 answers");
    });
  }
});

async function readAll(blobs: BlobStore, digest: Digest): Promise<Buffer | undefined> {
  const opened = await blobs.open(digest);
  if (!opened) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of opened.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
