import { Readable } from "node:stream";
import type { ByteRange, ObjectInfo, ObjectStream, PendingObject, PendingOptions, StorageDriver, WalkedObject } from "../driver.js";
import { StorageUnavailableError } from "../storage-unavailable-error.js";
import type { ObjectIndex } from "./object-index.js";
import { LiveUploads, S3PendingObject, type S3PendingContext } from "./s3-pending-object.js";
import type { S3Bucket } from "./s3-bucket.js";
import { PROBE_KEY } from "./s3-client.js";
import type { Spool } from "./spool.js";

/** How often an idle berth checks that S3 still takes writes, so readiness follows an outage. */
const PROBE_INTERVAL_MS = 10_000;

/**
 * The storage driver on an S3-compatible bucket, with the filesystem driver's key layout
 * (`blobs/sha256/ab/abcd...`, `repositories/...`) under the configured prefix. Request paths
 * never list the bucket: what exists is known from the object index (one walk at start, then
 * every write and delete), and small objects lately read or written are served from it.
 */
export class S3Driver implements StorageDriver {
  readonly live = new LiveUploads();
  private probeTimer?: NodeJS.Timeout;
  private probing?: Promise<void>;

  constructor(
    readonly bucket: S3Bucket,
    readonly index: ObjectIndex,
    readonly spool: Spool,
    readonly partSize: number,
  ) {}

  /** Empties the spool, loads the index with one walk of the bucket, and checks that S3 takes writes. */
  async initialise(): Promise<void> {
    await this.spool.initialise();
    const since = this.index.mark();
    for await (const object of this.bucket.list("")) this.index.listed(object.path, { size: object.size, modified: object.modified }, since);
    // Keys another process wrote while this one could not hear of it are found by a walk.
    this.index.onGapClosed(() => void this.reconcile().catch(() => {}));
    await this.probe();
    this.probeTimer = setInterval(() => void this.probe().catch(() => {}), PROBE_INTERVAL_MS).unref();
  }

  /**
   * Adds to the index what one walk of the bucket finds and the index does not know: keys a
   * listing left out at start (listings may lag writes). Keys this process deleted stay
   * absent, whatever a lagging listing still shows. Content collection runs it first.
   */
  async reconcile(): Promise<number> {
    let added = 0;
    const since = this.index.mark();
    for await (const object of this.bucket.list("")) {
      if (this.index.listed(object.path, { size: object.size, modified: object.modified }, since)) added++;
    }
    return added;
  }

  close(): void {
    clearInterval(this.probeTimer);
  }

  get pendingContext(): S3PendingContext {
    return { bucket: this.bucket, spool: this.spool, index: this.index, live: this.live, partSize: this.partSize };
  }

  async stat(path: string): Promise<ObjectInfo | undefined> {
    checkPath(path);
    await this.index.caughtUp();
    const known = this.index.lookup(path);
    if (known === "absent") return undefined;
    if (known) return known;
    const since = this.index.mark();
    const info = await this.bucket.head(path);
    this.index.answered(path, info, since);
    return info;
  }

  async open(path: string, range?: ByteRange): Promise<{ info: ObjectInfo; stream: ObjectStream } | undefined> {
    checkPath(path);
    await this.index.caughtUp();
    const known = this.index.lookup(path);
    if (known === "absent") return undefined;
    const cached = this.index.content(path);
    if (cached && known) {
      const bytes = range ? cached.subarray(range.start, range.end + 1) : cached;
      return { info: known, stream: Readable.from([bytes], { objectMode: false }) };
    }
    const since = this.index.mark();
    const answer = await this.bucket.get(path, range);
    if (answer === undefined) {
      this.index.answered(path, undefined, since);
      return undefined;
    }
    if (answer === "unsatisfiable") {
      const info = await this.stat(path);
      return info && { info, stream: Readable.from([]) };
    }
    const info = { size: answer.size, modified: answer.modified };
    if (!known) this.index.answered(path, info, since);
    return { info, stream: answer.body };
  }

  async readSmall(path: string): Promise<Buffer | undefined> {
    checkPath(path);
    await this.index.caughtUp();
    const known = this.index.lookup(path);
    if (known === "absent") return undefined;
    const cached = this.index.content(path);
    if (cached) return cached;
    const since = this.index.mark();
    const answer = await this.bucket.getObject(path);
    this.index.answered(path, answer && { size: answer.bytes.length, modified: answer.modified }, since, answer?.bytes);
    return answer?.bytes;
  }

  async writeSmall(path: string, data: Buffer | string): Promise<void> {
    checkPath(path);
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    await this.bucket.put(path, { length: bytes.length, open: () => bytes });
    await this.index.present(path, { size: bytes.length, modified: new Date() }, bytes);
  }

  /**
   * A target that already holds an object is not written to as the bytes arrive: its blob is
   * stored already, so the pending object will most likely be discarded, and completing a
   * multipart upload over an object holding the same bytes leaks storage on Swift (it keeps
   * the overwritten object's segments).
   */
  async createPending(options: PendingOptions = {}): Promise<PendingObject> {
    if (options.target !== undefined) checkPath(options.target);
    const target = options.target !== undefined && !(await this.stat(options.target)) ? options.target : undefined;
    return S3PendingObject.create(this.pendingContext, target);
  }

  async move(from: string, to: string): Promise<void> {
    checkPath(to);
    const info = await this.stat(from);
    if (!info) throw Object.assign(new Error(`no object at ${from} to move`), { code: "ENOENT" });
    await this.bucket.copy(from, to, info.size);
    await this.index.present(to, { size: info.size, modified: new Date() });
    await this.delete(from);
  }

  async delete(path: string): Promise<void> {
    checkPath(path);
    await this.index.caughtUp();
    const paths = new Set(this.index.under(path));
    if (this.index.lookup(path) === undefined) paths.add(path);
    if (paths.size === 0) return;
    await this.bucket.delete([...paths]);
    await Promise.all([...paths].map((deleted) => this.index.absent(deleted)));
  }

  async list(prefix: string): Promise<string[]> {
    if (prefix !== "") checkPath(prefix);
    await this.index.caughtUp();
    return this.index.children(prefix);
  }

  async hasAny(prefix: string): Promise<boolean> {
    if (prefix !== "") checkPath(prefix);
    await this.index.caughtUp();
    return this.index.children(prefix).length > 0;
  }

  async *walk(prefix: string): AsyncGenerator<WalkedObject> {
    if (prefix !== "") checkPath(prefix);
    yield* this.bucket.list(prefix === "" ? "" : `${prefix}/`);
  }

  /** Ready unless S3's last answer was a failure (then a probe runs in the background); never waits on S3. */
  async probeWritable(): Promise<void> {
    const failing = this.bucket.health.failing;
    if (!failing) return;
    void this.probe().catch(() => {});
    throw new StorageUnavailableError(`S3 is failing: ${failing.error.message}`, 5, { cause: failing.error });
  }

  async ensureSpace(bytes: number): Promise<void> {
    await this.spool.ensureSpace(bytes);
  }

  /** One small PutObject, at most one at a time: its outcome is S3's health. */
  private probe(): Promise<void> {
    const body = Buffer.from(String(Date.now()));
    this.probing ??= this.bucket.put(PROBE_KEY, { length: body.length, open: () => body }).finally(() => (this.probing = undefined));
    return this.probing;
  }
}

function checkPath(path: string): void {
  const segments = path.split("/");
  if (path === "" || path.includes("\0") || segments.some((s) => s === "" || s === "." || s === "..")) {
    throw new Error(`invalid storage path ${JSON.stringify(path)}`);
  }
}
