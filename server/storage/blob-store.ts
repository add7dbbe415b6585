import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KeyedLock } from "../concurrency/keyed-lock.js";
import { Digest, type DigestAlgorithm } from "../reference/digest.js";
import { BlobUsage } from "./blob-usage.js";
import { MeteredChunks } from "./metered-chunks.js";
import { SizeLimitError } from "./size-limit-error.js";
import type { ByteRange, ObjectStream, PendingObject, StorageDriver } from "./driver.js";

/** Raised when content does not hash to the digest it was stored or fetched under. */
export class DigestMismatchError extends Error {
  constructor(
    readonly expected: Digest,
    readonly actual: Digest,
  ) {
    super(`content hashes to ${actual}, not ${expected}`);
  }
}

export interface IngestOptions {
  /** When given, the content must hash to it or nothing is kept. */
  expected?: Digest;
  /** When given, the content must have exactly this many bytes. */
  expectedSize?: number;
  maxSize?: number;
}

/**
 * Content-addressable store: every blob and manifest, hosted or cached, keyed by digest.
 * Content is hashed while it is written and only ever placed under the digest it hashes to.
 */
export class BlobStore {
  private readonly placing = new KeyedLock();

  constructor(
    private readonly driver: StorageDriver,
    readonly usage: BlobUsage = new BlobUsage(driver),
  ) {}

  static path(digest: Digest): string {
    return `blobs/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}`;
  }

  async size(digest: Digest): Promise<number | undefined> {
    return (await this.driver.stat(BlobStore.path(digest)))?.size;
  }

  async open(digest: Digest, range?: ByteRange): Promise<{ size: number; stream: ObjectStream } | undefined> {
    const opened = await this.driver.open(BlobStore.path(digest), range);
    if (!opened) return undefined;
    opened.stream.once("close", this.usage.opened(digest));
    return { size: opened.info.size, stream: opened.stream };
  }

  async read(digest: Digest): Promise<Buffer | undefined> {
    this.usage.opened(digest)();
    return this.driver.readSmall(BlobStore.path(digest));
  }

  /** Streams content into the store, hashing on the way; keeps it only if it verifies. */
  async ingest(source: Readable | AsyncIterable<Buffer>, options: IngestOptions = {}): Promise<{ digest: Digest; size: number }> {
    const algorithm: DigestAlgorithm = options.expected?.algorithm ?? "sha256";
    const hash = createHash(algorithm);
    const limit = options.maxSize ?? options.expectedSize;
    const metered = new MeteredChunks(limit, (chunk) => hash.update(chunk));
    const pending = await this.driver.createPending(options.expected ? { target: BlobStore.path(options.expected) } : {});
    try {
      await pipeline(source, metered.stage, pending.stream);
      const size = metered.bytes;
      if (options.expectedSize !== undefined && size !== options.expectedSize) throw new SizeLimitError(options.expectedSize);
      const digest = Digest.fromHash(algorithm, hash);
      if (options.expected && !digest.equals(options.expected)) throw new DigestMismatchError(options.expected, digest);
      await this.place(pending, digest);
      return { digest, size };
    } catch (err) {
      await pending.discard();
      throw err;
    }
  }

  async ingestBuffer(data: Buffer, expected?: Digest): Promise<Digest> {
    const digest = Digest.of(expected?.algorithm ?? "sha256", data);
    if (expected && !digest.equals(expected)) throw new DigestMismatchError(expected, digest);
    if ((await this.size(digest)) === data.length) return digest;
    await this.driver.writeSmall(BlobStore.path(digest), data);
    return digest;
  }

  /**
   * Places an already verified pending object under its digest (or drops it if present). One at
   * a time per digest: an object store must not overwrite a blob with the same bytes (Swift
   * keeps the overwritten multipart object's segments).
   */
  async place(pending: PendingObject, digest: Digest): Promise<void> {
    await this.placing.run(digest.toString(), async () => {
      if ((await this.size(digest)) !== undefined) {
        await pending.discard();
        return;
      }
      await pending.commit(BlobStore.path(digest));
    });
  }

  /** Moves an already verified object at `path` under its digest. */
  async adopt(path: string, digest: Digest): Promise<void> {
    await this.placing.run(digest.toString(), async () => {
      if ((await this.size(digest)) !== undefined) {
        await this.driver.delete(path);
        return;
      }
      await this.driver.move(path, BlobStore.path(digest));
    });
  }

  async delete(digest: Digest): Promise<void> {
    await this.driver.delete(BlobStore.path(digest));
  }

  /** Every digest in the store, for garbage collection and audits. */
  async *digests(): AsyncGenerator<Digest> {
    for await (const blob of this.stored()) yield blob.digest;
  }

  /** Every blob in the store with its size and modification time, from one walk of the store. */
  async *stored(): AsyncGenerator<{ digest: Digest; size: number; modified: Date }> {
    for await (const object of this.driver.walk("blobs")) {
      const [, algorithm, prefix, hex, ...rest] = object.path.split("/");
      const digest = rest.length === 0 && hex?.startsWith(prefix) ? Digest.parse(`${algorithm}:${hex}`) : undefined;
      if (digest) yield { digest, size: object.size, modified: object.modified };
    }
  }
}
