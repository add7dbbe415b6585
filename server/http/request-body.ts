import type { Readable } from "node:stream";
import { RegistryError } from "../registry/errors.js";

/** Reads a small request body (a manifest) into memory; more than `limit` bytes is `tooLarge()`. */
export async function readBody(stream: Readable, limit: number, tooLarge: () => RegistryError): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      stream.resume();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}
