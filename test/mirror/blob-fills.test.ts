import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { PassThrough, Readable, Writable } from "node:stream";
import { describe, it, type TestContext } from "node:test";
import { setImmediate, setTimeout } from "node:timers/promises";
import { BlobFills, type BlobFill, type FillHooks } from "../../server/registry/blob-fill.js";
import { Digest } from "../../server/reference/digest.js";
import type { ObjectStream } from "../../server/storage/driver.js";
import { openTestStorage, testStorageDriver } from "../support/storage-drivers.js";

it("a client arriving after a fill failed, while it still cleans up, starts a fresh upstream fetch instead of inheriting the failure", async (t) => {
  const store = await openTestStorage(testStorageDriver());
  t.after(() => store.close());
  const storage = store.storage;
  const fills = new BlobFills(storage.driver, storage.blobs);
  const content = randomBytes(64 * 1024);
  const digest = Digest.of("sha256", content);
  const corrupt = Buffer.from(content);
  corrupt[0] ^= 0xff;

  let fetches = 0;
  let retried: { fill: BlobFill; started: boolean } | undefined;
  const hooks = (bytes: Buffer): FillHooks => ({
    fetch: async () => {
      fetches++;
      return { size: bytes.length, body: Readable.from([bytes]), anonymous: true };
    },
    onStored: async () => {},
    // Runs after the failure is visible to readers and before the failed fill leaves the list: the window a quick retry lands in.
    onFailed: () => {
      retried = fills.join(digest, "origin/repo", hooks(content));
    },
  });

  const failed = fills.join(digest, "origin/repo", hooks(corrupt)).fill;
  await failed.finished;
  assert.equal(failed.state, "failed");
  assert.ok(retried, "the retry joined while the failed fill was still listed");
  assert.equal(retried.started, true);
  await retried.fill.finished;

  assert.equal(retried.fill.state, "stored");
  assert.equal(fetches, 2);
  assert.deepEqual(await storage.blobs.read(digest), content);
});

describe("readers of a fill in flight", () => {
  const MiB = 1024 * 1024;
  /** Larger than the fill's in-memory window, so late readers must read the pending file. */
  const content = randomBytes(3 * MiB + 4321);
  const digest = Digest.of("sha256", content);

  /** A fill whose upstream body is fed by hand, and whose onStored waits for `storing` to be released. */
  async function fillByHand(t: TestContext) {
    const store = await openTestStorage(testStorageDriver());
    t.after(() => store.close());
    const storage = store.storage;
    const body = new PassThrough();
    let releaseStoring!: () => void;
    const storing = new Promise<void>((resolve) => (releaseStoring = resolve));
    const { fill } = new BlobFills(storage.driver, storage.blobs).join(digest, "origin/repo", {
      fetch: async () => ({ size: content.length, body, anonymous: true }),
      onStored: () => storing,
      onFailed: () => {},
    });
    await fill.sized;
    let sent = 0;
    /** Sends the upstream's bytes up to `end`, in 64 KiB chunks, letting the fill take each. */
    const sendUpTo = async (end: number) => {
      for (; sent < end; sent = Math.min(end, sent + 64 * 1024)) {
        if (!body.write(content.subarray(sent, Math.min(end, sent + 64 * 1024)))) await once(body, "drain");
        await setImmediate();
      }
      while (fill.received < sent) await setImmediate();
    };
    return { fill, storage, body, sendUpTo, releaseStoring };
  }

  /** Every byte a reader delivered: through sendTo into a collector, or read as a plain stream. */
  async function collect(stream: ObjectStream, via: "sendTo" | "stream"): Promise<Buffer> {
    if (via === "stream") return Buffer.concat(await stream.toArray());
    const collector = new Collector();
    await stream.sendTo!(collector);
    return Buffer.concat(collector.chunks);
  }

  for (const via of ["sendTo", "stream"] as const) {
    it(`deliver exactly the blob (${via}) to a reader from the start, one that joins behind the memory window, and ranges`, async (t) => {
      const { fill, sendUpTo, body, releaseStoring } = await fillByHand(t);
      const early = collect(await fill.open(), via);
      await sendUpTo(2 * MiB + 100);
      const late = collect(await fill.open(), via);
      const behind = collect(await fill.open({ start: 1000, end: 1999 }), via);
      const recent = collect(await fill.open({ start: 2 * MiB, end: 2 * MiB + 50 }), via);
      const ahead = collect(await fill.open({ start: 3 * MiB, end: content.length - 1 }), via);
      await sendUpTo(content.length);
      body.end();
      releaseStoring();
      assert.ok((await early).equals(content));
      assert.ok((await late).equals(content));
      assert.ok((await behind).equals(content.subarray(1000, 2000)));
      assert.ok((await recent).equals(content.subarray(2 * MiB, 2 * MiB + 51)));
      assert.ok((await ahead).equals(content.subarray(3 * MiB)));
      await fill.finished;
      assert.equal(fill.state, "stored");
    });
  }

  it("withhold the last byte until the upstream's bytes verified, and then finish before the blob is stored", async (t) => {
    const { fill, storage, sendUpTo, body, releaseStoring } = await fillByHand(t);
    const collector = new Collector();
    const sending = (await fill.open()).sendTo!(collector);
    await sendUpTo(content.length);
    await setTimeout(50);
    assert.equal(Buffer.concat(collector.chunks).length, content.length - 1, "every byte but the last");
    body.end();
    await sending;
    assert.ok(Buffer.concat(collector.chunks).equals(content));
    assert.equal(fill.state, "verified", "the reader did not wait for the blob to be stored");
    releaseStoring();
    await fill.finished;
    assert.equal(fill.state, "stored");
    assert.equal(await storage.blobs.size(digest), content.length);
  });

  it("let go of the fill as soon as their client goes away, while they wait for bytes", async (t) => {
    const { fill, sendUpTo, body, releaseStoring } = await fillByHand(t);
    const client = new Collector();
    const sending = (await fill.open()).sendTo!(client);
    await sendUpTo(MiB);
    assert.equal(fill.readers, 1);
    client.destroy();
    await assert.rejects(sending);
    assert.equal(fill.readers, 0);
    await sendUpTo(content.length);
    body.end();
    releaseStoring();
    await fill.finished;
    assert.equal(fill.state, "stored", "the fill goes on without readers");
  });
});

/** Keeps a copy of every chunk written to it: senders reuse their buffers. */
class Collector extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
}
