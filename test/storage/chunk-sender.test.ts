import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { PassThrough, Writable } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";
import { sendChunks } from "../../server/storage/chunk-sender.js";
import { FilesystemDriver } from "../../server/storage/filesystem-driver.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

/** A destination that keeps a copy of every chunk as it was when written, and is slow to take them. */
class SlowCollector extends Writable {
  readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    setImmediate(callback);
  }
}

describe("FilesystemDriver streams sending themselves (sendTo)", () => {
  let dir: TempDir;
  let driver: FilesystemDriver;
  const content = randomBytes(3 * 1024 * 1024 + 123);

  beforeEach(async () => {
    dir = await makeTempDir("chunk-sender");
    driver = new FilesystemDriver(dir.path);
    await driver.initialise();
    await driver.writeSmall("blob", content);
  });
  afterEach(() => dir.remove());

  for (const [label, range] of [
    ["the whole object", undefined],
    ["a range spanning several buffers", { start: 100, end: 2 * 1024 * 1024 + 7 }],
    ["a one-byte range", { start: 5, end: 5 }],
  ] as const) {
    it(`writes exactly ${label}, ends the destination and closes the stream`, async () => {
      const opened = (await driver.open("blob", range))!;
      const destination = new SlowCollector();
      const closed = once(opened.stream, "close");
      await opened.stream.sendTo!(destination);
      await closed;
      assert.equal(destination.writableFinished, true);
      const expected = range ? content.subarray(range.start, range.end + 1) : content;
      assert.ok(Buffer.concat(destination.chunks).equals(expected), "bytes differ from the stored range");
    });
  }

  it("sends an empty object as nothing", async () => {
    await driver.writeSmall("empty", "");
    const opened = (await driver.open("empty"))!;
    const destination = new SlowCollector();
    await opened.stream.sendTo!(destination);
    assert.equal(Buffer.concat(destination.chunks).length, 0);
  });

  it("rejects, and still closes the stream, when the destination goes away part-way", async () => {
    const opened = (await driver.open("blob"))!;
    const destination = new PassThrough({ highWaterMark: 1024 });
    destination.once("data", () => destination.destroy());
    const closed = once(opened.stream, "close");
    await assert.rejects(opened.stream.sendTo!(destination));
    await closed;
  });
});

describe("sendChunks' scratch buffers", () => {
  const MiB = 1024 * 1024;

  /** `count` transfers of `bytes` each to destinations that take nothing until released; the scratch bytes they hold once all are waiting. */
  async function heldByStalledTransfers(count: number, bytes: number): Promise<{ held: number; largest: number; release: () => Promise<void> }> {
    const holding = new Map<number, Buffer>();
    const pending: (() => void)[] = [];
    let released = false;
    const transfers: Promise<void>[] = [];
    for (let t = 0; t < count; t++) {
      let sent = 0;
      const destination = new Writable({
        write(_chunk, _encoding, callback) {
          if (released) callback();
          else pending.push(() => callback());
        },
      });
      transfers.push(
        sendChunks(destination, async (scratch) => {
          if (sent >= bytes) return undefined;
          const buffer = scratch.buffer(bytes - sent);
          holding.set(holding.size, buffer);
          const chunk = buffer.subarray(0, Math.min(buffer.length, bytes - sent));
          sent += chunk.length;
          return chunk;
        }),
      );
    }
    // Each transfer fills its three slots, then waits for the destination to take the first.
    while (holding.size < 3 * count) await new Promise((resolve) => setImmediate(resolve));
    const distinct = new Set(holding.values());
    const held = [...distinct].reduce((sum, b) => sum + b.length, 0);
    return {
      held,
      largest: Math.max(...[...distinct].map((b) => b.length)),
      release: async () => {
        released = true;
        for (const callback of pending.splice(0)) callback();
        await Promise.all(transfers);
      },
    };
  }

  it("gives a lone transfer 512 KiB buffers, three in flight", async () => {
    const { held, largest, release } = await heldByStalledTransfers(1, 4 * MiB);
    assert.equal(largest, 512 * 1024);
    assert.equal(held, 3 * 512 * 1024);
    await release();
  });

  it("lends buffers per chunk: 100 transfers reading a file at once share a few dozen 512 KiB buffers, where each held two of its own", async () => {
    const dir = await makeTempDir("chunk-sender-pool");
    try {
      const driver = new FilesystemDriver(dir.path);
      await driver.initialise();
      const content = randomBytes(MiB + 4321);
      await driver.writeSmall("blob", content);
      const seen = new Set<ArrayBufferLike>();
      const destinations = Array.from({ length: 100 }, () => {
        const collector = new SlowCollector();
        const write = collector.write.bind(collector) as (...args: unknown[]) => boolean;
        collector.write = ((chunk: Buffer, ...rest: unknown[]) => {
          if (chunk.buffer.byteLength === 512 * 1024) seen.add(chunk.buffer);
          return write(chunk, ...rest);
        }) as SlowCollector["write"];
        return collector;
      });
      await Promise.all(
        destinations.map(async (destination) => {
          const opened = (await driver.open("blob"))!;
          await opened.stream.sendTo!(destination);
        }),
      );
      for (const destination of destinations) assert.ok(Buffer.concat(destination.chunks).equals(content));
      assert.ok(seen.size <= 48, `100 transfers of ${content.length} bytes used ${seen.size} distinct 512 KiB buffers`);
    } finally {
      await dir.remove();
    }
  });
});
