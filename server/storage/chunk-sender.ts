import type { FileHandle } from "node:fs/promises";
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import pLimit from "p-limit";

/** Writes in flight per transfer: two chunks are prepared while one is being written. */
const SLOTS = 3;
const SCRATCH_BYTES = 512 * 1024;
/** A chunk wanting less than this gets a buffer of its own size instead of a pooled one. */
const POOLED_FROM = 64 * 1024;
/** Idle pooled buffers kept for the next chunks (16 MiB); more are left to the GC. */
const IDLE_LIMIT = 32;

/** A buffer a chunk source may read into, lent for one chunk. */
export interface Scratch {
  /** At least min(`wanted`, 512 KiB) bytes; may be larger, so read at most what is wanted. */
  buffer(wanted: number): Buffer;
}

/**
 * 512 KiB buffers every transfer of the process borrows, one chunk at a time: taken when a
 * chunk is read, given back once the destination has taken it. A transfer waiting for its
 * turn holds none, so the buffers in use follow the reads and writes under way, not the
 * transfers open. Each transfer keeping three of its own held ~120 MiB when 1,000 clients
 * pulled 1 MiB blobs (a burst of 260 transfers queued for libuv's four file-reading threads,
 * each holding buffers), and made 1 MiB of garbage per GET, which V8 frees only when a full
 * collection finds it dead (it starts one for external memory after ~64 MiB more of it).
 */
const idle: Buffer[] = [];

function borrow(wanted: number): Buffer {
  const size = Math.min(wanted, SCRATCH_BYTES);
  return size < POOLED_FROM ? Buffer.allocUnsafeSlow(size) : (idle.pop() ?? Buffer.allocUnsafeSlow(SCRATCH_BYTES));
}

function giveBack(buffer: Buffer | undefined): void {
  if (buffer?.length === SCRATCH_BYTES && idle.length < IDLE_LIMIT) idle.push(buffer);
}

/**
 * File reads into borrowed buffers at once, across transfers. libuv reads four files at a
 * time; a transfer beyond these waits here without a buffer instead of in libuv's queue with one.
 */
const reading = pLimit(8);

/**
 * Sends the chunks `next` produces to `destination` and ends it. `next` either reads into the
 * scratch buffer it is given and returns (part of) it, or returns a buffer of its own that is
 * never changed afterwards; undefined ends the transfer. A scratch buffer goes back to the
 * pool only once the destination has taken its bytes (the write callback); one whose write
 * failed is left to the GC, since the destination may still hold it. Piping a read stream
 * allocates a fresh buffer per chunk instead, and with many clients downloading large blobs
 * that garbage kept the GC busier than the copying.
 */
export async function sendChunks(destination: Writable, next: (scratch: Scratch) => Promise<Buffer | undefined>): Promise<void> {
  const writes: (Promise<void> | undefined)[] = [];
  for (let slot = 0; ; slot = (slot + 1) % SLOTS) {
    await writes[slot];
    let lent: Buffer | undefined;
    const chunk = await next({
      buffer: (wanted) => {
        giveBack(lent);
        lent = borrow(wanted);
        return lent;
      },
    }).catch((err: unknown) => {
      giveBack(lent);
      throw err;
    });
    if (chunk === undefined) {
      giveBack(lent);
      break;
    }
    const scratch = lent !== undefined && chunk.buffer === lent.buffer ? lent : undefined;
    if (scratch !== lent) giveBack(lent);
    const written = writeChunk(destination, chunk).then(() => giveBack(scratch));
    written.catch(() => {}); // observed when its slot comes round again or at the end
    writes[slot] = written;
  }
  await Promise.all(writes);
  destination.end();
  await finished(destination);
}

/** Sends bytes [first, last] of a file to `destination` through borrowed buffers, and ends it. */
export function sendFileRange(handle: FileHandle, first: number, last: number, destination: Writable): Promise<void> {
  let position = first;
  return sendChunks(destination, async (scratch) => {
    if (position > last) return undefined;
    return reading(async () => {
      const wanted = last + 1 - position;
      const buffer = scratch.buffer(wanted);
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, wanted), position);
      if (bytesRead === 0) throw new Error(`file ended at byte ${position}, before byte ${last}`);
      position += bytesRead;
      return buffer.subarray(0, bytesRead);
    });
  });
}

/**
 * Writes one chunk; resolves once the destination has taken it (the chunk may then be
 * reused), rejects if the write fails or the destination closes first.
 */
function writeChunk(destination: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const closed = () => reject(new Error("the destination closed before it took the chunk"));
    destination.once("close", closed);
    destination.write(chunk, (err) => {
      destination.off("close", closed);
      if (err) reject(err);
      else resolve();
    });
  });
}
