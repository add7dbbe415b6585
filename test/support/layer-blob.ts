import { createHash, type Hash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { seededRandomBytes } from "./seeded-random.js";

/** How a layer's tar is stored: gzip level 6, gzip level 0 (no CPU spent on incompressible data), or a plain tar. */
export type LayerCompression = "gzip" | "gzip-stored" | "none";

/** A layer blob written to disk. */
export interface LayerBlob {
  /** `sha256:` of the stored (possibly compressed) bytes. */
  digest: string;
  /** `sha256:` of the uncompressed tar: the config's `rootfs.diff_ids` entry. */
  diffId: string;
  /** Stored size in bytes. */
  size: number;
}

/**
 * Streams a layer into `blobsDir/<hex>`: a tar holding one regular file, `fileName`, of
 * `contentSize` seeded random bytes. Memory use does not grow with the size.
 */
export async function writeLayerBlob(
  blobsDir: string,
  options: { fileName: string; contentSize: number; seed: string; compression: LayerCompression },
): Promise<LayerBlob> {
  const tempPath = join(blobsDir, `.layer-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const diff = new HashingStream();
  const stored = options.compression === "none" ? diff : new HashingStream();
  const stages: NodeJS.ReadWriteStream[] = [diff];
  if (options.compression !== "none") stages.push(createGzip({ level: options.compression === "gzip" ? 6 : 0 }), stored);
  try {
    await pipeline([Readable.from(tarWithOneFile(options.fileName, options.contentSize, options.seed)), ...stages, createWriteStream(tempPath)]);
    const digest = stored.digest();
    await rename(tempPath, join(blobsDir, digest.slice("sha256:".length)));
    return { digest, diffId: diff.digest(), size: stored.bytes };
  } finally {
    await rm(tempPath, { force: true });
  }
}

async function* tarWithOneFile(fileName: string, size: number, seed: string): AsyncGenerator<Buffer> {
  yield ustarHeader(fileName, size);
  yield* seededRandomBytes(seed, size);
  yield Buffer.alloc((512 - (size % 512)) % 512);
  yield Buffer.alloc(1024); // end-of-archive marker: two zero blocks
}

/** A POSIX ustar header for a regular file, mode 0644, owned by root, mtime 0 (so a seed gives stable digests). */
function ustarHeader(name: string, size: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  if (size >= 8 ** 11) throw new Error(`tar entry too large for a ustar header: ${size}`);
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) => header.write(value, offset, length, "ascii");
  const octal = (offset: number, length: number, value: number) => field(offset, length, `${value.toString(8).padStart(length - 1, "0")}\0`);
  field(0, 100, name);
  octal(100, 8, 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 0);
  field(148, 8, " ".repeat(8));
  field(156, 1, "0");
  field(257, 6, "ustar\0");
  field(263, 2, "00");
  field(265, 32, "root");
  field(297, 32, "root");
  const checksum = header.reduce((sum, byte) => sum + byte, 0);
  field(148, 8, `${checksum.toString(8).padStart(6, "0")}\0 `);
  return header;
}

class HashingStream extends Transform {
  private readonly hash: Hash = createHash("sha256");
  private finalDigest: string | undefined;
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  digest(): string {
    this.finalDigest ??= `sha256:${this.hash.digest("hex")}`;
    return this.finalDigest;
  }
}
