import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { PassThrough, Writable } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";
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
