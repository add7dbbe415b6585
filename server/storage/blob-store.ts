import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KeyedLock } from "../concurrency/keyed-lock.js";
import { Digest, type DigestAlgorithm } from "../reference/digest.js";
import { BlobUsage } from "./blob-usage.js";
import { LocalCollectionGuard, type CollectionGuard } from "./collection-guard.js";
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
  /** What keeps collection from removing a blob while it is looked at, linked or read. */
  readonly guard: CollectionGuard;

  constructor(
    private readonly driver: StorageDriver,
    readonly usage: BlobUsage = new BlobUsage(driver),
    guard?: CollectionGuard,
  ) {
    this.guard = guard ?? new LocalCollectionGuard(usage);
  }

  static path(digest: Digest): string {
    return `blobs/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}`;
  }

  /** The digest whose blob lives at `path` (what `path` makes), or undefined for any other path. */
  static digestAt(path: string): Digest | undefined {
    const [root, algorithm, prefix, hex, ...rest] = path.split("/");
    return root === "blobs" && rest.length === 0 && hex?.startsWith(prefix) ? Digest.parse(`${algorithm}:${hex}`) : undefined;
  }

  /** The blob's size, pinning it: what a caller about to link it asks first. */
  async size(digest: Digest): Promise<number | undefined> {
    if (!(await this.guard.pin(digest))) return undefined;
    return (await this.driver.stat(BlobStore.path(digest)))?.size;
  }

  /** Opens the blob, pinned until its stream closes. */
  async open(digest: Digest, range?: ByteRange): Promise<{ size: number; stream: ObjectStream } | undefined> {
    const held = await this.guard.hold(digest);
    let opened: Awaited<ReturnType<StorageDriver["open"]>>;
    try {
      opened = held.kept ? await this.driver.open(BlobStore.path(digest), range) : undefined;
    } catch (err) {
      held.release();
      throw err;
    }
    if (!opened) {
      held.release();
      return undefined;
    }
    const closed = this.usage.opened(digest);
    opened.stream.once("close", () => {
      closed();
      held.release();
    });
    return { size: opened.info.size, stream: opened.stream };
  }

  async read(digest: Digest): Promise<Buffer | undefined> {
    this.usage.opened(digest)();
    if (!(await this.guard.pin(digest))) return undefined;
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
    await this.guard.placed(digest);
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
      await this.guard.placed(digest);
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
      await this.guard.placed(digest);
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
      const digest = BlobStore.digestAt(object.path);
      if (digest) yield { digest, size: object.size, modified: object.modified };
    }
  }
}
