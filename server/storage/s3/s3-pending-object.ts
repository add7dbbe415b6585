import { open } from "node:fs/promises";
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import type { PendingObject, PendingReader } from "../driver.js";
import { fileBody, type CompletedPart, type S3Bucket } from "./s3-bucket.js";
import type { ObjectIndex } from "./object-index.js";
import type { Spool, SpoolFile } from "./spool.js";

/** Part uploads in flight per object while its bytes arrive. */
const PARTS_IN_FLIGHT = 2;

/** Multipart uploads this process has started and not yet completed or aborted: the ones collection must leave alone. */
export class LiveUploads {
  private readonly ids = new Set<string>();

  add(uploadId: string): void {
    this.ids.add(uploadId);
  }

  delete(uploadId: string): void {
    this.ids.delete(uploadId);
  }

  has(uploadId: string): boolean {
    return this.ids.has(uploadId);
  }
}

export interface S3PendingContext {
  bucket: S3Bucket;
  spool: Spool;
  index: ObjectIndex;
  live: LiveUploads;
  partSize: number;
}

/**
 * An object being written to S3. Bytes go to a spool file (where readers of a fill find
 * them); when the final path is known up front, every full part is uploaded as it arrives,
 * to a multipart upload on that path that only `commit` completes, so a failed digest or a
 * crash leaves nothing visible, and nothing is copied. An object smaller than one part is
 * written at commit with a single PutObject.
 */
export class S3PendingObject implements PendingObject {
  readonly stream: Writable;
  private position = 0;
  private state: "open" | "committed" | "discarded" = "open";
  private multipart?: { uploadId: string; parts: CompletedPart[] };
  private starting?: Promise<string>;
  /** Offset of the first byte no part upload has taken yet. */
  private nextPart = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure?: Error;

  private constructor(
    private readonly context: S3PendingContext,
    private readonly file: SpoolFile,
    private readonly target: string | undefined,
  ) {
    this.stream = new Writable({
      highWaterMark: 1024 * 1024,
      writev: (chunks, callback) => {
        this.append(chunks.map((c) => c.chunk as Buffer)).then(() => callback(), callback);
      },
      final: (callback) => callback(this.failure ?? null),
    });
  }

  static async create(context: S3PendingContext, target?: string): Promise<S3PendingObject> {
    return new S3PendingObject(context, await context.spool.create(), target);
  }

  get written(): number {
    return this.position;
  }

  private async append(chunks: Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    const { bytesWritten } = await this.file.handle.writev(chunks, this.position);
    this.position += bytesWritten;
    this.file.grew(bytesWritten);
    if (this.target !== undefined) this.uploadFullParts();
  }

  private uploadFullParts(): void {
    const { partSize } = this.context;
    while (!this.failure && this.inFlight.size < PARTS_IN_FLIGHT && this.position - this.nextPart >= partSize) {
      this.startPart(this.nextPart, partSize);
      this.nextPart += partSize;
    }
  }

  private startPart(start: number, length: number): void {
    const number = Math.floor(start / this.context.partSize) + 1;
    const upload = (async () => {
      const uploadId = await this.uploadId();
      const part = await this.context.bucket.uploadPart(this.target!, uploadId, number, fileBody(this.file.path, start, length));
      this.multipart!.parts.push(part);
    })().then(
      () => {
        this.inFlight.delete(upload);
        this.uploadFullParts();
      },
      (err: unknown) => {
        this.inFlight.delete(upload);
        this.failure ??= err as Error;
      },
    );
    this.inFlight.add(upload);
  }

  private uploadId(): Promise<string> {
    this.starting ??= this.context.bucket.createMultipart(this.target!).then((uploadId) => {
      this.context.live.add(uploadId);
      this.multipart = { uploadId, parts: [] };
      return uploadId;
    });
    return this.starting;
  }

  private async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    await this.starting?.catch(() => {});
  }

  async commit(path: string): Promise<void> {
    if (this.state !== "open") throw new Error(`pending object already ${this.state}`);
    try {
      await finished(this.stream);
      await this.settled();
      if (this.failure) throw this.failure;
      const size = this.position;
      const { bucket, partSize } = this.context;
      if (path === this.target && this.multipart) {
        if (this.nextPart < size) this.startPart(this.nextPart, size - this.nextPart);
        await this.settled();
        if (this.failure) throw this.failure;
        const parts = [...this.multipart.parts].sort((a, b) => a.PartNumber - b.PartNumber);
        await bucket.completeMultipart(path, this.multipart.uploadId, parts);
        this.context.live.delete(this.multipart.uploadId);
        this.multipart = undefined;
      } else {
        await this.abort();
        if (size < partSize) await bucket.put(path, fileBody(this.file.path, 0, size));
        else await this.uploadWhole(path, size);
      }
      this.state = "committed";
      await this.context.index.present(path, { size, modified: new Date() });
    } catch (err) {
      this.state = "discarded";
      await this.abort().catch(() => {});
      throw err;
    } finally {
      await this.file.release();
    }
  }

  /** Uploads the spooled bytes to a path that was not the target, as one multipart upload. */
  private async uploadWhole(path: string, size: number): Promise<void> {
    const { bucket, partSize, live } = this.context;
    const uploadId = await bucket.createMultipart(path);
    live.add(uploadId);
    try {
      const parts: CompletedPart[] = [];
      for (let start = 0, number = 1; start < size; start += partSize, number++) {
        parts.push(await bucket.uploadPart(path, uploadId, number, fileBody(this.file.path, start, Math.min(partSize, size - start))));
      }
      await bucket.completeMultipart(path, uploadId, parts);
    } catch (err) {
      await bucket.abortMultipart(path, uploadId).catch(() => false);
      throw err;
    } finally {
      live.delete(uploadId);
    }
  }

  /** Aborts the multipart upload on the target, if one was started. */
  private async abort(): Promise<void> {
    await this.settled();
    const multipart = this.multipart;
    if (!multipart) return;
    this.multipart = undefined;
    // One that does not take is left to content collection, which aborts what no one owns.
    try {
      await this.context.bucket.abortMultipart(this.target!, multipart.uploadId);
    } finally {
      this.context.live.delete(multipart.uploadId);
    }
  }

  async discard(): Promise<void> {
    if (this.state !== "open") return;
    this.state = "discarded";
    this.failure ??= new Error("pending object discarded");
    this.stream.destroy();
    try {
      await this.abort();
    } finally {
      await this.file.release();
    }
  }

  async openReader(): Promise<PendingReader> {
    const reader = await open(this.file.path, "r");
    return {
      read: async (into: Buffer, position: number) => (await reader.read(into, 0, into.length, position)).bytesRead,
      close: () => reader.close(),
    };
  }
}
