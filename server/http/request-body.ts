import type { Readable } from "node:stream";
import { RegistryError } from "../registry/errors.js";

/** Reads a small request body (a manifest) into memory, refusing more than `limit` bytes. */
export async function readBody(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      stream.resume();
      throw new RegistryError("SIZE_INVALID", `body exceeds ${limit} bytes`, undefined, { status: 413 });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
