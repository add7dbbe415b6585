import { createHash } from "node:crypto";
import { once } from "node:events";
import { Readable, type Writable } from "node:stream";
import { Digest } from "../reference/digest.js";
import { BlobStore } from "../storage/blob-store.js";
import { sendChunks, type Scratch } from "../storage/chunk-sender.js";
import type { ByteRange, ObjectStream, PendingObject, PendingReader, StorageDriver } from "../storage/driver.js";
import { UpstreamError } from "../upstream/upstream-error.js";
import type { UpstreamBlob } from "../upstream/upstream-client.js";
import { ChunkWindow } from "./chunk-window.js";

/** Bytes kept in memory per fill for readers keeping up with it. */
const WINDOW_BYTES = 1024 * 1024;
/** What a sender keeping up with the fill waits to have before it writes to its client. */
const SEND_BATCH = 256 * 1024;
/** Longest such a sender holds bytes back. */
const SEND_BATCH_WAIT_MS = 20;
/** Largest read from the pending file for a reader streamed without reused buffers. */
const READ_CHUNK = 1024 * 1024;

/**
 * fetching: bytes are arriving. verified: every byte arrived and hashed to the digest, so
 * readers may have the last one; the blob is still being made durable. stored: the blob is
 * in the store. failed: nothing is kept.
 */
export type FillState = "fetching" | "verified" | "stored" | "failed";

/** One fetch of one blob from one source, as the clients waiting for it see it. */
export interface Fill {
  readonly state: FillState;
  readonly error?: Error;
  /** Total size, once known. */
  readonly size?: number;
  /** Resolves once the size is known or the fill failed. */
  readonly sized: Promise<void>;
  /** Resolves once this process is done with the fill: stored, failed, or handed on. */
  readonly finished: Promise<void>;
  /** The bytes in [start, end] (inclusive; the whole blob when absent), the blob's last byte only once it verified. */
  open(range?: ByteRange): Promise<ObjectStream>;
}

/**
 * The fills in flight, one per (source, digest): concurrent cold pulls of a blob from one
 * upstream repository share one fetch. `BlobFills` shares them within this process; a shared
 * implementation shares them between replicas.
 */
export interface Fills {
  /** The fill of `digest` from `source` this process knows to be in flight: a requester must be admitted to `source` before joining it. */
  get(digest: Digest, source: string): Fill | undefined;
  /** Joins the fill of `digest` from `source`, starting one with `hooks` if none is in flight. */
  join(digest: Digest, source: string, hooks: JoinHooks): { fill: Fill; started: boolean };
  abortAll(): void;
  /** Resolves when every fill this process runs has ended. */
  settled(): Promise<void>;
  /** Fills this process fetches now, for metrics and the status page. */
  list(): { digest: string; written: number; size?: number; readers: number }[];
}

/**
 * One upstream fetch of one blob, written to a pending object while it is hashed, and read
 * by every client that asked for it meanwhile: from the chunks still in memory when they keep
 * up, else from the pending object. Readers never receive the blob's last byte before the
 * digest has verified, so a corrupt upstream can only ever cut a response short.
 */
export class BlobFill implements Fill {
  state: FillState = "fetching";
  error?: Error;
  /** Total size, once the upstream said it (Content-Length) or the fetch ended. */
  size?: number;
  /** Bytes received from the upstream (and hashed). */
  received = 0;
  /** Bytes on disk in the pending object. */
  written = 0;
  /** Resolves once the size is known or the fill failed. */
  readonly sized: Promise<void>;
  readonly finished: Promise<void>;
  private readerCount = 0;
  private source?: PendingReader;
  private readonly window = new ChunkWindow(WINDOW_BYTES);
  private changed = new Signal();
  private readonly aborter = new AbortController();

  private constructor(
    readonly digest: Digest,
    private readonly blobs: BlobStore,
  ) {
    this.sized = this.becomes((fill) => fill.size !== undefined || fill.state !== "fetching");
    this.finished = this.becomes((fill) => fill.ended);
  }

  /** Resolves at the first change after which `reached` holds. */
  private async becomes(reached: (fill: BlobFill) => boolean): Promise<void> {
    while (!reached(this)) await this.changed.next;
  }

  /** Starts fetching; `onStored` runs once the blob is in the store. */
  static start(digest: Digest, driver: StorageDriver, blobs: BlobStore, hooks: FillHooks): BlobFill {
    const fill = new BlobFill(digest, blobs);
    void fill.run(driver, blobs, hooks);
    return fill;
  }

  /** Stops the fetch (berth is shutting down); readers fail, nothing is kept. */
  abort(reason: string): void {
    this.aborter.abort(new Error(reason));
  }

  /** Stored or failed: no reader will need the pending object again. */
  get ended(): boolean {
    return this.state === "stored" || this.state === "failed";
  }

  get readers(): number {
    return this.readerCount;
  }

  /** The bytes in [start, end] (inclusive; the whole blob when absent): from the store once stored, else as the fill delivers them. */
  async open(range?: ByteRange): Promise<ObjectStream> {
    if (this.state !== "stored") return this.follow(range);
    const stored = await this.blobs.open(this.digest, range);
    if (!stored) throw new Error(`blob ${this.digest} vanished after it was stored`);
    return stored.stream;
  }

  private follow(range?: ByteRange): ObjectStream {
    this.readerCount++;
    // Once stored, the blob must not be evicted under a reader still following the fill.
    const reading = this.blobs.usage.opened(this.digest);
    let position = range?.start ?? 0;
    let batchDue: number | undefined;
    const next = async (scratch?: Scratch): Promise<Buffer | undefined> => {
      for (;;) {
        if (this.state === "failed") throw this.error;
        if (stream.destroyed) throw new Error("the reader was closed");
        const limit = range ? range.end + 1 : this.size;
        const complete = this.state === "verified" || this.state === "stored";
        if (limit !== undefined && position >= limit) {
          if (complete) return undefined;
        } else {
          // Hold back the last received byte until the digest has verified.
          const available = Math.min(complete ? this.received : this.received - 1, limit ?? Infinity);
          // A sender keeping up with the fill waits a moment for a batch: one large write costs a socket far less than many small ones.
          const smallBatch = scratch !== undefined && position >= this.window.start && position < available && available < (limit ?? Infinity) && available - position < SEND_BATCH;
          batchDue = smallBatch ? (batchDue ?? performance.now() + SEND_BATCH_WAIT_MS) : undefined;
          if (position < available && (batchDue === undefined || performance.now() >= batchDue)) {
            batchDue = undefined;
            const chunk = position >= this.window.start ? this.fromWindow(position, available, scratch) : await this.readDurable(position, Math.min(available, this.window.start), scratch);
            position += chunk.length;
            return chunk;
          }
        }
        await (batchDue === undefined ? this.changed.next : atMost(this.changed.next, batchDue - performance.now()));
      }
    };
    const stream: ObjectStream = Object.assign(
      new Readable({
        highWaterMark: READ_CHUNK,
        read: () => {
          next().then(
            (chunk) => stream.push(chunk ?? null),
            (err: Error) => stream.destroy(err),
          );
        },
        destroy: (err, callback) => {
          reading();
          this.release();
          this.change(); // wakes this reader if it waits for bytes, so that it stops
          callback(err);
        },
      }),
      {
        sendTo: async (destination: Writable) => {
          destination.once("close", () => stream.destroy());
          try {
            await sendChunks(destination, next);
          } finally {
            stream.destroy();
          }
        },
      },
    );
    return stream;
  }

  /** Bytes from memory: the chunk as it arrived, or, when more than that chunk is ready, as many as the scratch buffer holds. */
  private fromWindow(position: number, upto: number, scratch?: Scratch): Buffer {
    const view = this.window.view(position, upto);
    if (!scratch || position + view.length >= upto) return view;
    const buffer = scratch.buffer(upto - position);
    return buffer.subarray(0, this.window.copy(position, upto, buffer));
  }

  /** Reads pending bytes in [position, upto), all already on disk, into a scratch buffer or a fresh one. */
  private async readDurable(position: number, upto: number, scratch?: Scratch): Promise<Buffer> {
    const wanted = upto - position;
    const buffer = scratch ? scratch.buffer(wanted) : Buffer.allocUnsafe(Math.min(wanted, READ_CHUNK));
    const length = Math.min(buffer.length, wanted);
    const bytesRead = await this.source!.read(buffer.subarray(0, length), position);
    if (bytesRead === 0) throw new Error(`blob ${this.digest}: pending file ended at byte ${position}, before byte ${upto}`);
    return buffer.subarray(0, bytesRead);
  }

  private release(): void {
    this.readerCount--;
    void this.closeSourceIfIdle();
  }

  private async closeSourceIfIdle(): Promise<void> {
    if (this.readerCount === 0 && this.ended && this.source) {
      const source = this.source;
      this.source = undefined;
      await source.close().catch(() => {});
    }
  }

  private change(): void {
    const changed = this.changed;
    this.changed = new Signal();
    changed.fire();
  }

  private async run(driver: StorageDriver, blobs: BlobStore, hooks: FillHooks): Promise<void> {
    let pending: PendingObject | undefined;
    try {
      pending = await driver.createPending({ target: BlobStore.path(this.digest) });
      this.source = await pending.openReader();
      const upstream = await hooks.fetch();
      // Errors surface through the iteration below; this keeps a destroy before it starts from being unhandled.
      upstream.body.on("error", () => {});
      const cancel = () => upstream.body.destroy(this.aborter.signal.reason as Error);
      if (this.aborter.signal.aborted) cancel();
      this.aborter.signal.addEventListener("abort", cancel, { once: true });
      if (upstream.size !== undefined) {
        // Refused before any reader has sent headers: a full disk is a 507, not a cut transfer.
        await driver.ensureSpace(upstream.size).catch((err: unknown) => {
          upstream.body.destroy();
          throw err;
        });
        this.size = upstream.size;
        this.change();
      }
      const hash = createHash(this.digest.algorithm);
      const output = pending.stream;
      let received = 0;
      for await (const chunk of bodyOf(upstream, this.digest)) {
        received += chunk.length;
        if (this.size !== undefined && received > this.size) {
          upstream.body.destroy();
          throw new UpstreamError("corrupt", `blob ${this.digest}: upstream sent more than its Content-Length ${this.size}`);
        }
        hash.update(chunk);
        if (output.errored) throw output.errored;
        this.window.append(chunk);
        this.received = received;
        this.change();
        // Queued rather than awaited one by one: the file stream batches the writes while the
        // upstream keeps flowing (awaiting each cost a cold pull a third more CPU).
        const queued = output.write(chunk, (err) => {
          if (err) return;
          this.written += chunk.length;
          this.window.trim(this.written);
        });
        if (!queued) await once(output, "drain");
      }
      if (this.size !== undefined && received !== this.size) {
        throw new UpstreamError("corrupt", `blob ${this.digest}: upstream sent ${received} of ${this.size} bytes`);
      }
      const actual = Digest.fromHash(this.digest.algorithm, hash);
      if (!actual.equals(this.digest)) {
        throw new UpstreamError("corrupt", `blob ${this.digest}: upstream bytes hash to ${actual}`);
      }
      // Every queued write in the file (and counted in `written`) before readers may finish.
      await new Promise<void>((resolve, reject) => output.end((err?: Error | null) => (err ? reject(err) : resolve())));
      this.size = this.written;
      // Readers finish now, not after the fsync and rename: their bytes are proven, and
      // making a large blob durable would hold every client's last byte for a fifth of the
      // transfer time.
      this.state = "verified";
      this.change();
      await blobs.place(pending, this.digest);
      await hooks.onStored();
      this.state = "stored";
    } catch (err) {
      this.error = err instanceof Error ? err : new Error(String(err));
      this.state = "failed";
      await pending?.discard();
      hooks.onFailed(this.error);
    }
    this.window.clear();
    this.change();
    await this.closeSourceIfIdle();
  }
}

export interface FillHooks {
  /** Starts the upstream request. */
  fetch: () => Promise<UpstreamBlob>;
  /** Runs once the verified blob is in the store. */
  onStored: () => Promise<void>;
  /** Runs once when the fill fails, whichever step failed. */
  onFailed: (err: Error) => void;
}

/** What joining a fill that may be fetched by another process needs besides the FillHooks. */
export interface JoinHooks extends FillHooks {
  /** Lets the requester have the source's bytes, or throws why not: run before it follows a fetch another process makes for someone else. */
  admit: () => Promise<void>;
  /** Whether the blob is now stored and linked for the source (a fill elsewhere completed it). */
  stored: () => Promise<boolean>;
}

/** The upstream body; a connection that breaks mid-transfer is an upstream outage. */
async function* bodyOf(upstream: UpstreamBlob, digest: Digest): AsyncGenerator<Buffer> {
  try {
    yield* upstream.body as AsyncIterable<Buffer>;
  } catch (err) {
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError("unreachable", `blob ${digest}: transfer broke off: ${(err as Error).message}`, { cause: err });
  }
}

/** The fills in flight in this process, one per digest: concurrent cold pulls share one upstream fetch. */
export class BlobFills implements Fills {
  private readonly inflight = new Map<string, BlobFill>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
  ) {}

  /**
   * The fill of `digest` from `source` (an upstream repository) in flight. Fills are per source:
   * bytes another upstream is delivering are not this one's to serve.
   */
  get(digest: Digest, source: string): BlobFill | undefined {
    return this.inflight.get(fillKey(digest, source));
  }

  /** Joins the fill of `digest` from `source`, starting one with `fetch` if none is in flight. */
  join(digest: Digest, source: string, hooks: FillHooks): { fill: BlobFill; started: boolean } {
    const key = fillKey(digest, source);
    const existing = this.inflight.get(key);
    // A failed fill stays listed while it discards its pending object, after its readers saw the failure: a client retrying at once gets a fresh fetch.
    if (existing && existing.state !== "failed") return { fill: existing, started: false };
    const fill = BlobFill.start(digest, this.driver, this.blobs, hooks);
    this.inflight.set(key, fill);
    void fill.finished.then(() => {
      if (this.inflight.get(key) === fill) this.inflight.delete(key);
    });
    return { fill, started: true };
  }

  abortAll(): void {
    for (const fill of this.inflight.values()) fill.abort("berth is shutting down");
  }

  /** Resolves when every fill in flight has ended. */
  async settled(): Promise<void> {
    await Promise.all([...this.inflight.values()].map((fill) => fill.finished));
  }

  /** Fills in flight, for metrics and the status page. */
  list(): { digest: string; written: number; size?: number; readers: number }[] {
    return [...this.inflight.values()].map((f) => ({ digest: f.digest.toString(), written: f.written, size: f.size, readers: f.readers }));
  }
}

function fillKey(digest: Digest, source: string): string {
  return `${source} ${digest}`;
}

/** A one-shot wake-up that any number of waiters can await. */
class Signal {
  readonly next: Promise<void>;
  fire!: () => void;

  constructor() {
    this.next = new Promise((resolve) => (this.fire = resolve));
  }
}

/** Waits for `promise`, but no longer than `ms`. */
async function atMost(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
