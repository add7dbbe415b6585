import { createHash } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { PassThrough, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Digest } from "../reference/digest.js";
import type { BlobStore } from "../storage/blob-store.js";
import type { PendingObject, PendingReader, StorageDriver } from "../storage/driver.js";
import { UpstreamError } from "../upstream/upstream-error.js";
import type { UpstreamBlob } from "../upstream/upstream-client.js";

const READ_CHUNK = 1024 * 1024;

type FillState = "fetching" | "verified" | "failed";

/**
 * One upstream fetch of one blob, written to a pending object while it is hashed, and read
 * by every client that asked for it meanwhile. Readers never receive the blob's last byte
 * before the digest has verified, so a corrupt upstream can only ever cut a response short.
 */
export class BlobFill extends EventEmitter {
  state: FillState = "fetching";
  error?: Error;
  /** Total size, once the upstream said it (Content-Length) or the fetch ended. */
  size?: number;
  written = 0;
  /** Resolves once the size is known or the fill failed. */
  readonly sized: Promise<void>;
  readonly finished: Promise<void>;
  private readers = 0;
  private source?: PendingReader;
  private readonly aborter = new AbortController();

  private constructor(
    readonly digest: Digest,
    private readonly blobs: BlobStore,
  ) {
    super();
    this.setMaxListeners(0);
    this.sized = this.becomes((fill) => fill.size !== undefined || fill.state !== "fetching");
    this.finished = this.becomes((fill) => fill.state !== "fetching");
  }

  /** Resolves at the first change after which `reached` holds. */
  private becomes(reached: (fill: BlobFill) => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (!reached(this)) return;
        this.off("change", check);
        resolve();
      };
      this.on("change", check);
    });
  }

  /** Starts fetching; `onVerified` runs after the blob is placed in the store and before readers finish. */
  static start(digest: Digest, driver: StorageDriver, blobs: BlobStore, hooks: FillHooks): BlobFill {
    const fill = new BlobFill(digest, blobs);
    void fill.run(driver, blobs, hooks);
    return fill;
  }

  /** Stops the fetch (berth is shutting down); readers fail, nothing is kept. */
  abort(reason: string): void {
    this.aborter.abort(new Error(reason));
  }

  /** A stream of the bytes in [start, end] (inclusive; the whole blob when absent). */
  reader(range?: { start: number; end: number }): Readable {
    if (this.state === "verified") return this.storedReader(range);
    this.readers++;
    let position = range?.start ?? 0;
    const end = () => (range ? range.end + 1 : this.size);
    const fill = this;
    let waiting: (() => void) | undefined;
    const stream = new Readable({
      highWaterMark: READ_CHUNK,
      read() {
        void pump();
      },
      destroy(err, callback) {
        if (waiting) fill.off("change", waiting);
        fill.release();
        callback(err);
      },
    });
    let pumping = false;
    const pump = async (): Promise<void> => {
      if (pumping || stream.destroyed) return;
      pumping = true;
      try {
        for (;;) {
          if (this.state === "failed") {
            stream.destroy(this.error);
            return;
          }
          const limit = end();
          if (limit !== undefined && position >= limit) {
            if (this.state === "verified") {
              stream.push(null);
              return;
            }
          } else {
            // Hold back the last written byte until the digest has verified.
            const readable = this.state === "verified" ? this.written : Math.max(0, this.written - 1);
            const upto = Math.min(readable, limit ?? Infinity);
            if (position < upto && this.source) {
              const chunk = await this.source.read(position, Math.min(READ_CHUNK, upto - position));
              position += chunk.length;
              if (!stream.push(chunk)) return;
              continue;
            }
          }
          await new Promise<void>((resolve) => {
            waiting = () => {
              this.off("change", waiting!);
              waiting = undefined;
              resolve();
            };
            this.on("change", waiting);
          });
          if (stream.destroyed) return;
        }
      } catch (err) {
        stream.destroy(err as Error);
      } finally {
        pumping = false;
      }
    };
    return stream;
  }

  /** Once verified the blob is in the store, and the shared pending reader may be closed. */
  private storedReader(range?: { start: number; end: number }): Readable {
    const output = new PassThrough();
    this.blobs.open(this.digest, range).then(
      (opened) => {
        if (!opened) output.destroy(new Error(`blob ${this.digest} vanished after it was verified`));
        else pipeline(opened.stream, output).catch(() => {});
      },
      (err: Error) => output.destroy(err),
    );
    return output;
  }

  private release(): void {
    this.readers--;
    void this.closeSourceIfIdle();
  }

  private async closeSourceIfIdle(): Promise<void> {
    if (this.readers === 0 && this.state !== "fetching" && this.source) {
      const source = this.source;
      this.source = undefined;
      await source.close().catch(() => {});
    }
  }

  private change(): void {
    this.emit("change");
  }

  private async run(driver: StorageDriver, blobs: BlobStore, hooks: FillHooks): Promise<void> {
    let pending: PendingObject | undefined;
    try {
      pending = await driver.createPending();
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
        // Queued rather than awaited one by one: the file stream batches the writes while the
        // upstream keeps flowing (awaiting each cost a cold pull a third more CPU).
        const queued = output.write(chunk, (err) => {
          if (err) return;
          this.written += chunk.length;
          this.change();
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
      // Every queued write on disk (and counted in `written`) before the blob is placed.
      await new Promise<void>((resolve, reject) => output.end((err?: Error | null) => (err ? reject(err) : resolve())));
      await blobs.place(pending, this.digest);
      await hooks.onVerified();
      this.size = this.written;
      this.state = "verified";
    } catch (err) {
      this.error = err instanceof Error ? err : new Error(String(err));
      this.state = "failed";
      await pending?.discard();
      hooks.onFailed(this.error);
    }
    this.change();
    await this.closeSourceIfIdle();
  }
}

export interface FillHooks {
  /** Starts the upstream request. */
  fetch: () => Promise<UpstreamBlob>;
  /** Runs once the verified blob is in the store, before readers see its end. */
  onVerified: () => Promise<void>;
  /** Runs once when the fill fails, whichever step failed. */
  onFailed: (err: Error) => void;
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
export class BlobFills {
  private readonly inflight = new Map<string, BlobFill>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
  ) {}

  get(digest: Digest): BlobFill | undefined {
    return this.inflight.get(digest.toString());
  }

  /** Joins the fill of `digest`, starting one with `fetch` if none is in flight. */
  join(digest: Digest, hooks: FillHooks): { fill: BlobFill; started: boolean } {
    const key = digest.toString();
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
    return [...this.inflight.values()].map((f) => ({ digest: f.digest.toString(), written: f.written, size: f.size, readers: f.listenerCount("change") }));
  }
}
