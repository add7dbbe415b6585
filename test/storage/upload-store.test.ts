import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { DigestMismatchError } from "../../server/storage/blob-store.js";
import { SizeLimitError } from "../../server/storage/size-limit-error.js";
import type { Storage } from "../../server/storage/storage.js";
import { UploadInterruptedError, UploadOffsetError, UploadUnknownError } from "../../server/storage/uploads.js";
import { openTestStorage, STORAGE_DRIVERS, type TestStorage } from "../support/storage-drivers.js";

const data = randomBytes(300 * 1024);
const parts = [data.subarray(0, 100 * 1024), data.subarray(100 * 1024, 250 * 1024), data.subarray(250 * 1024)];
const digest = Digest.of("sha256", data);

for (const kind of STORAGE_DRIVERS) describe(`UploadStore (${kind})`, () => {
  let store: TestStorage;
  let storage: Storage;

  beforeEach(async () => {
    store = await openTestStorage(kind);
    storage = store.storage;
  });
  afterEach(() => store.close());

  const uploads = () => storage.uploads;
  const tempFiles = () => store.leftovers();
  const appendAll = async (id: string, chunks: Buffer[]) => {
    let offset = 0;
    for (const chunk of chunks) {
      await uploads().append(id, offset, Readable.from([chunk]));
      offset += chunk.length;
    }
  };

  it("creates a session of size 0 for a repository, and lists it", async () => {
    const session = await uploads().create("team/app");
    assert.match(session.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(await uploads().get(session.id), { ...session, size: 0 });
    assert.deepEqual(await uploads().ids(), [session.id]);
  });

  it("appends chunks in order, each kept as a part (on S3, chunks under 5 MiB as tail objects), and reports the size received", async () => {
    const { id } = await uploads().create("team/app");
    await appendAll(id, parts);
    assert.equal((await uploads().get(id))?.size, data.length);
    assert.equal((await storage.driver.list(`uploads/${id}/${kind === "s3" ? "tail" : "parts"}`)).length, 3);
  });

  it("refuses a chunk that does not start at the current size, reporting that size", async () => {
    const { id } = await uploads().create("team/app");
    await uploads().append(id, 0, Readable.from([parts[0]]));
    for (const offset of [0, parts[0].length + 1, 5]) {
      await assert.rejects(uploads().append(id, offset, Readable.from([parts[1]])), (err: unknown) => {
        assert.ok(err instanceof UploadOffsetError);
        assert.equal(err.size, parts[0].length);
        return true;
      });
    }
    assert.equal((await uploads().get(id))?.size, parts[0].length);
  });

  it("lets exactly one of two concurrent chunks at the same offset in", async () => {
    const { id } = await uploads().create("team/app");
    const results = await Promise.allSettled([uploads().append(id, 0, Readable.from([parts[0]])), uploads().append(id, 0, Readable.from([parts[0]]))]);
    assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
    assert.equal((await uploads().get(id))?.size, parts[0].length);
  });

  /** A chunk's source that delivers `bytes` and then fails, as a request body whose client went away. */
  const cutAfter = (bytes: Buffer) => {
    let sent = false;
    return new Readable({
      read() {
        if (sent) return this.destroy(new Error("client went away"));
        sent = true;
        this.push(bytes);
      },
    });
  };

  it("keeps what a chunk delivered before its source failed as a part, and reports the new size", async () => {
    const { id } = await uploads().create("team/app");
    await uploads().append(id, 0, Readable.from([parts[0]]));
    await assert.rejects(uploads().append(id, parts[0].length, cutAfter(parts[1].subarray(0, 1000))), (err: unknown) => {
      assert.ok(err instanceof UploadInterruptedError);
      assert.equal(err.size, parts[0].length + 1000);
      assert.match(String((err.cause as Error).message), /client went away/);
      return true;
    });
    assert.equal((await uploads().get(id))?.size, parts[0].length + 1000);
    assert.deepEqual(await tempFiles(), []);
    await assert.rejects(uploads().append(id, parts[0].length, Readable.from([parts[1]])), UploadOffsetError);
    await uploads().append(id, parts[0].length + 1000, Readable.from([data.subarray(parts[0].length + 1000)]));
    await uploads().complete(id, digest);
    assert.ok(data.equals((await storage.blobs.read(digest))!));
  });

  it("completes a session cut in its first chunk as exactly the bytes kept (its running hash agrees with the part)", async () => {
    const kept = data.subarray(0, 1000);
    const { id } = await uploads().create("team/app");
    await assert.rejects(uploads().append(id, 0, cutAfter(kept)), UploadInterruptedError);
    await assert.rejects(uploads().complete(id, digest), DigestMismatchError);
    const { id: again } = await uploads().create("team/app");
    await assert.rejects(uploads().append(again, 0, cutAfter(kept)), UploadInterruptedError);
    await uploads().complete(again, Digest.of("sha256", kept));
    assert.ok(kept.equals((await storage.blobs.read(Digest.of("sha256", kept)))!));
  });

  it("keeps no part for a chunk whose source fails before its first byte", async () => {
    const { id } = await uploads().create("team/app");
    await uploads().append(id, 0, Readable.from([parts[0]]));
    const failing = new Readable({
      read() {
        this.destroy(new Error("client went away"));
      },
    });
    await assert.rejects(uploads().append(id, parts[0].length, failing), (err: unknown) => err instanceof UploadInterruptedError && err.size === parts[0].length);
    assert.equal((await storage.driver.list(`uploads/${id}/${kind === "s3" ? "tail" : "parts"}`)).length, 1);
    assert.deepEqual(await tempFiles(), []);
  });

  it("refuses a chunk over maxSize, keeping the session as it was", async () => {
    const { id } = await uploads().create("team/app");
    await assert.rejects(uploads().append(id, 0, Readable.from([parts[0]]), 10), SizeLimitError);
    assert.equal((await uploads().get(id))?.size, 0);
    assert.deepEqual(await tempFiles(), []);
  });

  it("adds no part for an empty chunk", async () => {
    const { id } = await uploads().create("team/app");
    await uploads().append(id, 0, Readable.from([]));
    assert.deepEqual(await storage.driver.list(`uploads/${id}`), ["info"]);
  });

  for (const [how, chunks] of [
    ["one chunk", [data]],
    ["several chunks", parts],
  ] as const) {
    it(`completes an upload of ${how} into the blob store under its digest and removes the session`, async () => {
      const { id } = await uploads().create("team/app");
      await appendAll(id, [...chunks]);
      const session = await uploads().complete(id, digest);
      assert.equal(session.size, data.length);
      assert.ok(data.equals((await storage.blobs.read(digest))!));
      assert.equal(await uploads().get(id), undefined);
      assert.deepEqual(await uploads().ids(), []);
      assert.deepEqual(await tempFiles(), []);
    });
  }

  it("completes against a sha512 digest", async () => {
    const { id } = await uploads().create("team/app");
    await appendAll(id, parts);
    const sha512 = Digest.of("sha512", data);
    await uploads().complete(id, sha512);
    assert.equal(await storage.blobs.size(sha512), data.length);
  });

  for (const [how, chunks] of [
    ["one chunk", [data]],
    ["several chunks", parts],
  ] as const) {
    it(`refuses to complete ${how} that hash to another digest, storing nothing`, async () => {
      const { id } = await uploads().create("team/app");
      await appendAll(id, [...chunks]);
      const wrong = Digest.of("sha256", Buffer.from("something else"));
      await assert.rejects(uploads().complete(id, wrong), DigestMismatchError);
      assert.equal(await storage.blobs.size(wrong), undefined);
      assert.equal(await storage.blobs.size(digest), undefined);
      assert.deepEqual(await tempFiles(), []);
    });
  }

  it("survives a restart: a new store over the same root continues and completes the upload", async () => {
    const { id } = await uploads().create("team/app");
    await appendAll(id, parts.slice(0, 2));
    store = await store.reopen();
    const restarted = store.storage;
    const session = await restarted.uploads.get(id);
    assert.equal(session?.size, parts[0].length + parts[1].length);
    assert.equal(session?.repository, "team/app");
    await restarted.uploads.append(id, session!.size, Readable.from([parts[2]]));
    await restarted.uploads.complete(id, digest);
    assert.ok(data.equals((await restarted.blobs.read(digest))!));
  });

  it("forgets a cancelled session: its parts go and further use is UploadUnknownError", async () => {
    const { id } = await uploads().create("team/app");
    await appendAll(id, parts);
    await uploads().cancel(id);
    assert.equal(await uploads().get(id), undefined);
    assert.deepEqual(await storage.driver.list("uploads"), []);
    await assert.rejects(uploads().append(id, 0, Readable.from([parts[0]])), UploadUnknownError);
    await assert.rejects(uploads().complete(id, digest), UploadUnknownError);
  });

  it("treats an id that is not a session id as unknown, without touching the filesystem outside uploads/", async () => {
    await storage.driver.writeSmall("uploads-sibling/info", JSON.stringify({ repository: "x", startedAt: "" }));
    for (const id of ["../uploads-sibling", "..", "", "A".repeat(36), "../../etc/passwd"]) {
      assert.equal(await uploads().get(id), undefined, id);
      await assert.rejects(uploads().append(id, 0, Readable.from([Buffer.from("x")])), UploadUnknownError);
    }
  });

  it("does not place a completed blob that is already stored twice", async () => {
    await storage.blobs.ingestBuffer(data);
    const { id } = await uploads().create("team/app");
    await appendAll(id, [data]);
    await uploads().complete(id, digest);
    const stored: string[] = [];
    for await (const d of storage.blobs.digests()) stored.push(d.toString());
    assert.deepEqual(stored, [digest.toString()]);
    assert.deepEqual(await tempFiles(), []);
  });
});
