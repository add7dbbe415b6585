import { createCipheriv, createHash, randomBytes } from "node:crypto";

const CHUNK = 1024 * 1024;
const ZEROS = Buffer.alloc(CHUNK);

/** A seed for `seededRandomBytes`, fresh each call. */
export function randomSeed(): string {
  return randomBytes(16).toString("hex");
}

/**
 * `length` incompressible pseudo-random bytes, the same for the same seed, yielded in 1 MiB
 * chunks (an AES-256-CTR keystream: fast, and never the whole content in memory).
 */
export async function* seededRandomBytes(seed: string, length: number): AsyncGenerator<Buffer> {
  const key = createHash("sha256").update(seed).digest();
  const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  for (let left = length; left > 0; left -= CHUNK) {
    yield cipher.update(left >= CHUNK ? ZEROS : ZEROS.subarray(0, left));
  }
}
