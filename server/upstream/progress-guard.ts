import { pipeline, Transform, type Readable } from "node:stream";
import { UpstreamError } from "./upstream-error.js";

/** What a body must deliver per read-timeout window to count as moving: 64 KiB, about 1 KiB/s at the default 60 s. */
export const MIN_BYTES_PER_WINDOW = 64 * 1024;

/**
 * `body` as a stream that fails with an "unreachable" UpstreamError when, in a window of
 * `windowMs` that ends with its reader waiting for data, fewer than `minBytes` arrived.
 * undici's bodyTimeout only bounds the gap between two chunks, so an upstream dripping a
 * byte a second (a slow loris) would otherwise hold a transfer, and every client waiting on
 * it, for days. A reader that is itself slow (data still buffered) is never blamed on the upstream.
 */
export function guardProgress(body: Readable, windowMs: number, what: string, minBytes = MIN_BYTES_PER_WINDOW): Readable {
  let received = 0;
  const guarded = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      callback(null, chunk);
    },
  });
  const watchdog = setInterval(() => {
    if (received < minBytes && guarded.readableLength === 0) {
      guarded.destroy(new UpstreamError("unreachable", `${what}: upstream sent ${received} bytes in ${windowMs} ms, below ${minBytes}`));
    }
    received = 0;
  }, windowMs).unref();
  pipeline(body, guarded, () => clearInterval(watchdog));
  return guarded;
}
