import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { ByteRange } from "../driver.js";
import { StorageUnavailableError } from "../storage-unavailable-error.js";
import type { S3Health } from "./s3-health.js";
import type { S3Traffic } from "./s3-traffic.js";

/** Largest object one CopyObject may copy, and largest part. */
const MAX_SINGLE_COPY = 5 * 1024 ** 3;
/** Range copied per UploadPartCopy when an object is too large for CopyObject. */
const COPY_PART = 1024 ** 3;
/** Keys per DeleteObjects request (S3's limit). */
const DELETE_BATCH = 1000;
/** What a client is told to wait when S3 fails. */
const RETRY_AFTER_SECONDS = 5;
/** Slowest upload rate a request body is given time for, on top of the timeout. */
const MIN_UPLOAD_BYTES_PER_SECOND = 1024 * 1024;
/** Slowest rate S3 is given time to copy at on its side (its answer comes once the copy is done). */
const MIN_COPY_BYTES_PER_SECOND = 8 * 1024 * 1024;
/** Time S3 is given per part to assemble a completed multipart upload. */
const COMPLETE_MS_PER_PART = 100;

/** A request body that can be produced again for each attempt. */
export interface Body {
  length: number;
  open(): Readable | Buffer;
}

/** Bytes [start, start + length) of a local file, as a request body. */
export function fileBody(path: string, start: number, length: number): Body {
  return { length, open: () => (length === 0 ? Buffer.alloc(0) : createReadStream(path, { start, end: start + length - 1, highWaterMark: 1024 * 1024 })) };
}

export interface CompletedPart {
  PartNumber: number;
  ETag: string;
}

export interface MultipartUpload {
  path: string;
  uploadId: string;
  initiated: Date;
}

/**
 * berth's bucket: every S3 operation the driver uses, on keys under the configured prefix,
 * each retried with backoff (a fresh body per attempt) and, once it fails every attempt,
 * raised as StorageUnavailableError (503 + Retry-After for clients). Answers that mean
 * "absent" (404) are results, not failures.
 */
export class S3Bucket {
  constructor(
    private readonly client: S3Client,
    readonly name: string,
    readonly prefix: string,
    private readonly timing: { timeoutMs: number; maxAttempts: number },
    readonly health: S3Health,
    readonly traffic: S3Traffic,
  ) {}

  key(path: string): string {
    return `${this.prefix}${path}`;
  }

  /** The path of a key under the prefix. */
  path(key: string): string {
    return key.slice(this.prefix.length);
  }

  async head(path: string): Promise<{ size: number; modified: Date } | undefined> {
    const answer = await this.call("HeadObject", () => this.client.send(new HeadObjectCommand({ Bucket: this.name, Key: this.key(path) })), [404]);
    if (answer === 404) return undefined;
    return { size: answer.ContentLength ?? 0, modified: answer.LastModified ?? new Date() };
  }

  /** The object's bytes (a range of them); "unsatisfiable" when the range starts past its end. */
  async get(path: string, range?: ByteRange): Promise<{ body: Readable; size: number; modified: Date } | "unsatisfiable" | undefined> {
    const answer = await this.call(
      "GetObject",
      () => this.client.send(new GetObjectCommand({ Bucket: this.name, Key: this.key(path), ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) })),
      [404, 416],
    );
    if (answer === 404) return undefined;
    if (answer === 416) return "unsatisfiable";
    const total = /\/(\d+)$/.exec(answer.ContentRange ?? "")?.[1];
    const body = guardStall(answer.Body as Readable, this.timing.timeoutMs, () => this.unavailable("GetObject", new Error(`no bytes for ${this.timing.timeoutMs} ms while the reader waited`)));
    return { body, size: total !== undefined ? Number(total) : (answer.ContentLength ?? 0), modified: answer.LastModified ?? new Date() };
  }

  async getBytes(path: string): Promise<Buffer | undefined> {
    return (await this.getObject(path))?.bytes;
  }

  /** The object's bytes, with when it was last written. */
  async getObject(path: string): Promise<{ bytes: Buffer; modified: Date } | undefined> {
    const answer = await this.get(path);
    if (answer === undefined || answer === "unsatisfiable") return undefined;
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of answer.body) chunks.push(chunk as Buffer);
    } catch (err) {
      throw this.unavailable("GetObject", err);
    }
    return { bytes: Buffer.concat(chunks), modified: answer.modified };
  }

  async put(path: string, body: Body): Promise<void> {
    await this.call("PutObject", () => this.client.send(new PutObjectCommand({ Bucket: this.name, Key: this.key(path), Body: body.open(), ContentLength: body.length }), this.sending(body)));
  }

  async createMultipart(path: string): Promise<string> {
    const answer = await this.call("CreateMultipartUpload", () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.name, Key: this.key(path) })));
    if (!answer.UploadId) throw this.unavailable("CreateMultipartUpload", new Error("S3 returned no UploadId"));
    return answer.UploadId;
  }

  async uploadPart(path: string, uploadId: string, partNumber: number, body: Body): Promise<CompletedPart> {
    const answer = await this.call("UploadPart", () =>
      this.client.send(new UploadPartCommand({ Bucket: this.name, Key: this.key(path), UploadId: uploadId, PartNumber: partNumber, Body: body.open(), ContentLength: body.length }), this.sending(body)),
    );
    return { PartNumber: partNumber, ETag: answer.ETag ?? "" };
  }

  async completeMultipart(path: string, uploadId: string, parts: CompletedPart[]): Promise<void> {
    await this.call("CompleteMultipartUpload", () =>
      this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.name, Key: this.key(path), UploadId: uploadId, MultipartUpload: { Parts: parts } }), {
        requestTimeout: this.timing.timeoutMs + parts.length * COMPLETE_MS_PER_PART,
      }),
    );
  }

  /**
   * Aborts a multipart upload and checks that it took (S3 may keep parts that were being
   * uploaded during the abort): true once S3 no longer knows the upload.
   */
  async abortMultipart(path: string, uploadId: string): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      await this.call("AbortMultipartUpload", () => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.name, Key: this.key(path), UploadId: uploadId })), [404]);
      if ((await this.partBytes(path, uploadId)) === undefined) return true;
    }
    return false;
  }

  /** Bytes held by an unfinished multipart upload's parts; undefined when S3 does not know the upload. */
  async partBytes(path: string, uploadId: string): Promise<number | undefined> {
    let bytes = 0;
    let marker: string | undefined;
    do {
      const answer = await this.call(
        "ListParts",
        () => this.client.send(new ListPartsCommand({ Bucket: this.name, Key: this.key(path), UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}) })),
        [404],
      );
      if (answer === 404) return undefined;
      for (const part of answer.Parts ?? []) bytes += part.Size ?? 0;
      marker = answer.IsTruncated ? answer.NextPartNumberMarker : undefined;
    } while (marker);
    return bytes;
  }

  /** Copies an object of `size` bytes on S3's side (in ranges past CopyObject's 5 GiB). */
  async copy(from: string, to: string, size: number): Promise<void> {
    const source = `${this.name}/${encodeURIComponent(this.key(from)).replace(/%2F/g, "/")}`;
    if (size <= MAX_SINGLE_COPY) {
      await this.call("CopyObject", () => this.client.send(new CopyObjectCommand({ Bucket: this.name, Key: this.key(to), CopySource: source }), this.copying(size)));
      this.traffic.copied(size);
      return;
    }
    const uploadId = await this.createMultipart(to);
    try {
      const parts: CompletedPart[] = [];
      for (let start = 0, number = 1; start < size; start += COPY_PART, number++) {
        const end = Math.min(size, start + COPY_PART) - 1;
        const answer = await this.call("UploadPartCopy", () =>
          this.client.send(new UploadPartCopyCommand({ Bucket: this.name, Key: this.key(to), UploadId: uploadId, PartNumber: number, CopySource: source, CopySourceRange: `bytes=${start}-${end}` }), this.copying(end + 1 - start)),
        );
        this.traffic.copied(end + 1 - start);
        parts.push({ PartNumber: number, ETag: answer.CopyPartResult?.ETag ?? "" });
      }
      await this.completeMultipart(to, uploadId, parts);
    } catch (err) {
      await this.abortMultipart(to, uploadId).catch(() => false);
      throw err;
    }
  }

  async delete(paths: readonly string[]): Promise<void> {
    for (let i = 0; i < paths.length; i += DELETE_BATCH) {
      const batch = paths.slice(i, i + DELETE_BATCH);
      const answer = await this.call("DeleteObjects", () =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.name, Delete: { Objects: batch.map((path) => ({ Key: this.key(path) })), Quiet: true } })),
      );
      const failed = (answer.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
      if (failed.length > 0) throw this.unavailable("DeleteObjects", new Error(`S3 did not delete ${failed.length} keys: ${failed[0].Code} ${failed[0].Message ?? ""}`));
    }
  }

  /** Every object under a prefix: one flat listing, page by page. */
  async *list(prefix: string): AsyncGenerator<{ path: string; size: number; modified: Date }> {
    let token: string | undefined;
    do {
      const answer = await this.call("ListObjectsV2", () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.name, Prefix: this.key(prefix), ...(token ? { ContinuationToken: token } : {}) })),
      );
      for (const object of answer.Contents ?? []) {
        if (object.Key) yield { path: this.path(object.Key), size: object.Size ?? 0, modified: object.LastModified ?? new Date(0) };
      }
      token = answer.IsTruncated ? answer.NextContinuationToken : undefined;
    } while (token);
  }

  /** Every unfinished multipart upload under the prefix. */
  async *multipartUploads(): AsyncGenerator<MultipartUpload> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const answer = await this.call("ListMultipartUploads", () =>
        this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.name, Prefix: this.prefix, ...(keyMarker ? { KeyMarker: keyMarker } : {}), ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}) }),
        ),
      );
      for (const upload of answer.Uploads ?? []) {
        if (upload.Key && upload.UploadId) yield { path: this.path(upload.Key), uploadId: upload.UploadId, initiated: upload.Initiated ?? new Date(0) };
      }
      const more = answer.IsTruncated === true;
      keyMarker = more ? answer.NextKeyMarker : undefined;
      uploadIdMarker = more ? answer.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  /**
   * Runs one S3 request with retries: network failures, timeouts, throttling and 5xx are tried
   * again (after 100 ms, 200 ms, ... with jitter); statuses in `expected` are returned as
   * results; anything else, or the last failure, is a StorageUnavailableError.
   */
  private async call<T, E extends number = never>(operation: string, send: () => Promise<T>, expected: readonly E[] = []): Promise<T | E> {
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await send();
        this.health.succeeded();
        return answer;
      } catch (err) {
        const status = statusOf(err);
        if (status !== undefined && (expected as readonly number[]).includes(status)) {
          this.health.succeeded();
          return status as E;
        }
        if (!retryable(err, status) || attempt >= this.timing.maxAttempts) {
          const failure = this.unavailable(operation, err);
          this.health.failed(failure);
          throw failure;
        }
        await delay(100 * 2 ** (attempt - 1) * (0.5 + Math.random()));
      }
    }
  }

  /** Time for a request with a body: the timeout, plus the body sent at a slow but steady rate. */
  private sending(body: Body): { requestTimeout: number } {
    return { requestTimeout: this.timing.timeoutMs + Math.ceil((body.length / MIN_UPLOAD_BYTES_PER_SECOND) * 1000) };
  }

  /** Time for a server-side copy: S3 answers once it has copied every byte. */
  private copying(bytes: number): { requestTimeout: number } {
    return { requestTimeout: this.timing.timeoutMs + Math.ceil((bytes / MIN_COPY_BYTES_PER_SECOND) * 1000) };
  }

  private unavailable(operation: string, err: unknown): StorageUnavailableError {
    const status = statusOf(err);
    const reason = `${(err as { name?: string }).name ?? "Error"}${status ? ` (${status})` : ""}: ${(err as Error).message}`;
    return new StorageUnavailableError(`S3 ${operation} on bucket ${this.name} failed: ${reason}`, RETRY_AFTER_SECONDS, { cause: err });
  }
}

/**
 * `body`, destroyed when a window of `windowMs` passes in which it flowed (its reader wanted
 * data) and none arrived: S3 stalled mid-body. A reader that is slow itself pauses the body,
 * which never trips it, where a socket idle timeout would cut a slow client's download. It
 * watches the body's own events rather than adding a stream stage, which every byte would cross.
 */
function guardStall(body: Readable, windowMs: number, failure: () => Error): Readable {
  let arrived = false;
  const seen = () => (arrived = true);
  // A "data" listener alone would start the body flowing into it before its reader is attached,
  // and those bytes would be lost: paused first, it flows only when the reader asks.
  body.pause();
  body.on("data", seen);
  const watchdog = setInterval(() => {
    if (!arrived && body.readableFlowing === true && body.readableLength === 0) body.destroy(failure());
    arrived = false;
  }, windowMs).unref();
  body.once("close", () => clearInterval(watchdog));
  return body;
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** Worth another attempt: no answer at all, a timeout, throttling, or a server error. */
function retryable(err: unknown, status: number | undefined): boolean {
  if (status === undefined) return true;
  return status >= 500 || status === 429 || status === 408 || (err as { name?: string }).name === "SlowDown" || (err as { name?: string }).name === "RequestTimeout";
}
