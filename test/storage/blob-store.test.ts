import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { BlobStore, DigestMismatchError } from "../../server/storage/blob-store.js";
import { SizeLimitError } from "../../server/storage/size-limit-error.js";
import { openTestStorage, STORAGE_DRIVERS, type TestStorage } from "../support/storage-drivers.js";

const sha256 = (data: Buffer) => Digest.of("sha256", data);
const sha512 = (data: Buffer) => Digest.of("sha512", data);

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A source that yields some bytes, then fails as a dropped client would. */
function failingSource(bytes: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(bytes);
      } else {
        this.destroy(new Error("connection reset"));
      }
    },
  });
}

for (const kind of STORAGE_DRIVERS) describe(`BlobStore (${kind})`, () => {
  let store: TestStorage;
  let blobs: BlobStore;

  beforeEach(async () => {
    store = await openTestStorage(kind);
    blobs = store.storage.blobs;
  });
  afterEach(() => store.close());

  const tempFiles = () => store.leftovers();
  /** Every file under blobs/, as algorithm/hex. */
  const storedFiles = async () => {
    const found: string[] = [];
    for await (const digest of blobs.digests()) found.push(digest.toString());
    return found;
  };

  it("stores streamed content under the sha256 it hashes to, and serves it back", async () => {
    const data = randomBytes(2 * 1024 * 1024 + 3);
    const result = await blobs.ingest(Readable.from([data.subarray(0, 1000), data.subarray(1000)]));
    assert.ok(result.digest.equals(sha256(data)));
    assert.equal(result.size, data.length);
    assert.equal(await blobs.size(result.digest), data.length);
    const opened = await blobs.open(result.digest);
    assert.ok(opened && data.equals(await readAll(opened.stream)));
    assert.equal(BlobStore.path(result.digest), `blobs/sha256/${result.digest.hex.slice(0, 2)}/${result.digest.hex}`);
  });

  it("keeps nothing, not even a temp file, when content does not match the expected digest", async () => {
    const data = Buffer.from("actual content");
    const expected = sha256(Buffer.from("claimed content"));
    await assert.rejects(blobs.ingest(Readable.from([data]), { expected }), (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError);
      assert.ok(err.expected.equals(expected));
      assert.ok(err.actual.equals(sha256(data)));
      return true;
    });
    assert.equal(await blobs.size(expected), undefined);
    assert.equal(await blobs.size(sha256(data)), undefined);
    assert.deepEqual(await storedFiles(), []);
    assert.deepEqual(await tempFiles(), []);
  });

  it("hashes with sha512 when the expected digest is sha512, and stores under it", async () => {
    const data = Buffer.from("sha512 content");
    const result = await blobs.ingest(Readable.from([data]), { expected: sha512(data) });
    assert.equal(result.digest.toString(), sha512(data).toString());
    assert.equal(result.digest.hex, createHash("sha512").update(data).digest("hex"));
    assert.ok(data.equals((await blobs.read(sha512(data)))!));
    assert.equal(await blobs.size(sha256(data)), undefined);
  });

  it("refuses sha512 content that does not match, keeping nothing", async () => {
    await assert.rejects(blobs.ingest(Readable.from([Buffer.from("x")]), { expected: sha512(Buffer.from("y")) }), DigestMismatchError);
    assert.deepEqual(await storedFiles(), []);
    assert.deepEqual(await tempFiles(), []);
  });

  it("refuses content longer than maxSize or not of expectedSize, keeping nothing", async () => {
    const data = Buffer.alloc(1000, 7);
    await assert.rejects(blobs.ingest(Readable.from([data]), { maxSize: 999 }), SizeLimitError);
    await assert.rejects(blobs.ingest(Readable.from([data]), { expectedSize: 1001 }), SizeLimitError);
    await assert.rejects(blobs.ingest(Readable.from([data]), { expectedSize: 999 }), SizeLimitError);
    assert.deepEqual(await storedFiles(), []);
    assert.deepEqual(await tempFiles(), []);
    await blobs.ingest(Readable.from([data]), { expectedSize: 1000, maxSize: 1000 });
  });

  it("keeps nothing when the source fails part-way", async () => {
    await assert.rejects(blobs.ingest(failingSource(randomBytes(64 * 1024))), /connection reset/);
    assert.deepEqual(await storedFiles(), []);
    assert.deepEqual(await tempFiles(), []);
  });

  it("stores content it already holds once, however often and concurrently it arrives", async () => {
    const data = randomBytes(256 * 1024);
    await Promise.all(Array.from({ length: 8 }, () => blobs.ingest(Readable.from([data]), { expected: sha256(data) })));
    await blobs.ingest(Readable.from([data]));
    assert.deepEqual(await storedFiles(), [sha256(data).toString()]);
    assert.ok(data.equals((await blobs.read(sha256(data)))!));
    assert.deepEqual(await tempFiles(), []);
  });

  it("stores a buffer only when it matches the expected digest", async () => {
    const data = Buffer.from("manifest bytes");
    await assert.rejects(blobs.ingestBuffer(data, sha256(Buffer.from("other"))), DigestMismatchError);
    assert.deepEqual(await storedFiles(), []);
    const digest = await blobs.ingestBuffer(data, sha256(data));
    assert.ok(digest.equals(sha256(data)));
    assert.ok(data.equals((await blobs.read(digest))!));
    assert.ok((await blobs.ingestBuffer(data, sha512(data))).equals(sha512(data)));
  });

  it("opens a byte range of a blob", async () => {
    const data = Buffer.from("0123456789");
    const { digest } = await blobs.ingest(Readable.from([data]));
    const opened = await blobs.open(digest, { start: 4, end: 8 });
    assert.ok(opened);
    assert.equal(opened.size, 10);
    assert.equal((await readAll(opened.stream)).toString(), "45678");
  });

  it("answers an absent blob with undefined and deletes it without error", async () => {
    const absent = sha256(Buffer.from("absent"));
    assert.equal(await blobs.size(absent), undefined);
    assert.equal(await blobs.open(absent), undefined);
    assert.equal(await blobs.read(absent), undefined);
    await blobs.delete(absent);
  });

  it("deletes a blob", async () => {
    const { digest } = await blobs.ingest(Readable.from([Buffer.from("to delete")]));
    await blobs.delete(digest);
    assert.equal(await blobs.size(digest), undefined);
    assert.deepEqual(await storedFiles(), []);
  });
});
