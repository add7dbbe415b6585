import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChunkWindow } from "../../server/registry/chunk-window.js";

/** A window holding `sizes` chunks appended in order, each byte its offset mod 251. */
function windowOf(capacity: number, sizes: number[]): { window: ChunkWindow; bytes: Buffer } {
  const window = new ChunkWindow(capacity);
  const total = sizes.reduce((sum, size) => sum + size, 0);
  const bytes = Buffer.from(Array.from({ length: total }, (_, offset) => offset % 251));
  let offset = 0;
  for (const size of sizes) {
    window.append(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return { window, bytes };
}

describe("ChunkWindow", () => {
  it("views the bytes from a position to the end of the chunk holding it, or to a limit, without copying", () => {
    const { window, bytes } = windowOf(1024, [10, 20, 30]);
    assert.deepEqual(window.view(0, 60), bytes.subarray(0, 10));
    assert.deepEqual(window.view(15, 60), bytes.subarray(15, 30));
    assert.deepEqual(window.view(30, 60), bytes.subarray(30, 60));
    assert.deepEqual(window.view(35, 40), bytes.subarray(35, 40));
    assert.equal(window.view(12, 60).buffer, bytes.buffer, "a view shares the chunk's memory");
  });

  it("copies across chunks, as many bytes as fit or up to a limit", () => {
    const { window, bytes } = windowOf(1024, [10, 20, 30]);
    const into = Buffer.alloc(25);
    assert.equal(window.copy(5, 60, into), 25);
    assert.deepEqual(into, bytes.subarray(5, 30));
    assert.equal(window.copy(28, 33, into), 5);
    assert.deepEqual(into.subarray(0, 5), bytes.subarray(28, 33));
    assert.equal(window.copy(50, 60, into), 10);
    assert.deepEqual(into.subarray(0, 10), bytes.subarray(50, 60));
  });

  it("forgets the oldest chunks beyond its capacity, but never one with bytes not yet durable", () => {
    const { window, bytes } = windowOf(25, [10, 10, 10, 10]);
    assert.equal(window.start, 0);
    assert.equal(window.end, 40);
    window.trim(5);
    assert.equal(window.start, 0, "the first chunk is not wholly durable");
    window.trim(40);
    assert.equal(window.start, 10, "dropping one more chunk would leave fewer than 25 bytes");
    assert.deepEqual(window.view(10, 40), bytes.subarray(10, 20));
    window.append(bytes.subarray(0, 10));
    window.trim(25);
    assert.equal(window.start, 20, "only chunks that end at or before the durable offset go");
    assert.equal(window.end, 50);
  });

  it("is empty at the end of the transfer once cleared", () => {
    const { window } = windowOf(1024, [10, 20]);
    window.clear();
    assert.equal(window.start, 30);
    assert.equal(window.end, 30);
  });
});
