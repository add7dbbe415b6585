import type { FileHandle } from "node:fs/promises";
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";

/** Writes in flight per transfer: two chunks are prepared while one is being written. */
const SLOTS = 3;
const SCRATCH_BYTES = 512 * 1024;

/** A buffer a chunk source may read into, reused once the destination took its last write. */
export interface Scratch {
  /** At least min(`wanted`, 512 KiB) bytes; may be larger, so read at most what is wanted. */
  buffer(wanted: number): Buffer;
}

/**
 * Sends the chunks `next` produces to `destination` and ends it. `next` either reads into the
 * scratch buffer it is given and returns (part of) it, or returns a buffer of its own that is
 * never changed afterwards; undefined ends the transfer. A scratch buffer is handed out again
 * only once the destination has taken its bytes (the write callback). Piping a read stream
 * allocates a fresh buffer per chunk instead, and with many clients downloading large blobs
 * that garbage kept the GC busier than the copying.
 */
export async function sendChunks(destination: Writable, next: (scratch: Scratch) => Promise<Buffer | undefined>): Promise<void> {
  const buffers: Buffer[] = [];
  const writes: (Promise<void> | undefined)[] = [];
  for (let slot = 0; ; slot = (slot + 1) % SLOTS) {
    await writes[slot];
    const chunk = await next({
      buffer: (wanted) => {
        const size = Math.min(wanted, SCRATCH_BYTES);
        if (!(buffers[slot]?.length >= size)) buffers[slot] = Buffer.allocUnsafeSlow(size);
        return buffers[slot];
      },
    });
    if (chunk === undefined) break;
    const written = writeChunk(destination, chunk);
    written.catch(() => {}); // observed when its slot comes round again or at the end
    writes[slot] = written;
  }
  await Promise.all(writes);
  destination.end();
  await finished(destination);
}

/** Sends bytes [first, last] of a file to `destination` through reused buffers, and ends it. */
export function sendFileRange(handle: FileHandle, first: number, last: number, destination: Writable): Promise<void> {
  let position = first;
  return sendChunks(destination, async (scratch) => {
    if (position > last) return undefined;
    const wanted = last + 1 - position;
    const buffer = scratch.buffer(wanted);
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, wanted), position);
    if (bytesRead === 0) throw new Error(`file ended at byte ${position}, before byte ${last}`);
    position += bytesRead;
    return buffer.subarray(0, bytesRead);
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
