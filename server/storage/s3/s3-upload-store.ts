import { createHash, randomUUID, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KeyedLock } from "../../concurrency/keyed-lock.js";
import { Digest } from "../../reference/digest.js";
import { BlobStore, DigestMismatchError } from "../blob-store.js";
import { MeteredChunks } from "../metered-chunks.js";
import { UntilFailure, UploadInterruptedError, UploadOffsetError, UploadUnknownError, type UploadSession } from "../upload-store.js";
import type { Uploads } from "../uploads.js";
import type { Body } from "./s3-bucket.js";
import type { S3Driver } from "./s3-driver.js";
import type { SpoolFile } from "./spool.js";

/** S3's smallest part (but the last). */
const MIN_PART = 5 * 1024 * 1024;
const ROOT = "uploads";
/** Spool subdirectory of chunks (those kept are local copies of tail objects). */
const TAILS = "uploads";
const ID_PATTERN = /^[a-f0-9-]{36}$/;

/** What `uploads/<id>/info` records of a session: everything needed to resume it after a restart. */
interface SessionRecord {
  repository: string;
  startedAt: string;
  size: number;
  /** The session's multipart upload on `uploads/<id>/data`, once its chunks filled a part. */
  multipart?: { uploadId: string; parts: { number: number; etag: string; size: number }[] };
  /** Chunks not yet joined to a part, each the object `uploads/<id>/tail/<offset>`; together shorter than a part. */
  tail: { offset: number; size: number }[];
}

/** A run of bytes a part is made of: from a local file or from memory. */
type Piece = { file: string; start: number; length: number } | { bytes: Buffer };

interface RunningHash {
  hash: Hash;
  bytes: number;
}

/**
 * Blob upload sessions on S3. Each session is one multipart upload on `uploads/<id>/data`:
 * a chunk that, with the tail before it, fills at least a 5 MiB part is uploaded as parts
 * while it arrives; a shorter one (or what is left under 5 MiB after full parts) is kept as a
 * tail object and joined to the next chunk's first part. So a small chunk costs O(tail), never O(upload) (Distribution's S3 driver re-copies
 * the whole upload on every chunk under 5 MiB), and 1 MiB chunks send each byte at most
 * twice before the final copy. The session record is rewritten after every chunk; a crash
 * leaves the session at its last recorded chunk. Completion verifies the digest (from the
 * running hash, else by reading the upload back) and copies the upload under its digest; a
 * session that received everything in its completing request (`?digest=` pushes) writes
 * straight onto the digest's key instead, with no copy.
 */
export class S3UploadStore implements Uploads {
  private readonly lock = new KeyedLock();
  private readonly running = new Map<string, RunningHash>();
  /** Local copies of tail objects this process wrote, so joining them reads no S3. */
  private readonly localTails = new Map<string, SpoolFile>();

  constructor(
    private readonly driver: S3Driver,
    private readonly blobs: BlobStore,
  ) {}

  private get bucket() {
    return this.driver.bucket;
  }

  async create(repository: string): Promise<UploadSession> {
    const id = randomUUID();
    const record: SessionRecord = { repository, startedAt: new Date().toISOString(), size: 0, tail: [] };
    await this.save(id, record);
    this.running.set(id, { hash: createHash("sha256"), bytes: 0 });
    return session(id, record);
  }

  async get(id: string): Promise<UploadSession | undefined> {
    const record = await this.record(id);
    return record && session(id, record);
  }

  async append(id: string, offset: number | undefined, source: Readable, maxSize?: number): Promise<UploadSession> {
    return this.lock.run(id, async () => {
      const record = await this.require(id);
      if (offset !== undefined && offset !== record.size) throw new UploadOffsetError(record.size);
      const running = this.running.get(id);
      const hashing = running && running.bytes === record.size ? running : undefined;
      this.running.delete(id);
      const metered = new MeteredChunks(maxSize, (chunk) => hashing?.hash.update(chunk));
      const received = new UntilFailure(source);
      const file = await this.driver.spool.create(TAILS);
      const parts = new ChunkParts(this.bucket, dataPath(id), record, await this.tailPieces(id, record), file.path, this.driver.partSize);
      let kept = false;
      try {
        let position = 0;
        // The source's failure ends the chunk like its end would, so every byte hashed is kept.
        await pipeline(
          received.chunks(),
          metered.stage,
          new Writable({
            write: (chunk: Buffer, _encoding, callback) => {
              file.handle.write(chunk, 0, chunk.length, position).then(({ bytesWritten }) => {
                position += bytesWritten;
                file.grew(bytesWritten);
                parts.arrived(position);
                callback(parts.failure ?? null);
              }, callback);
            },
          }),
        );
        const length = metered.bytes;
        if (length > 0) kept = await this.store(id, record, parts, { file: file.path, start: 0, length }, file);
      } finally {
        await parts.settled();
        if (!kept) await file.release();
      }
      if (hashing) this.running.set(id, { hash: hashing.hash, bytes: record.size });
      if (received.failure !== undefined) throw new UploadInterruptedError(record.size, received.failure);
      return session(id, record);
    });
  }

  /**
   * Adds a received chunk to the session: as parts when, with the tail before it, it fills one
   * (full parts already went up while it arrived), else as a tail object; a remainder under
   * 5 MiB after full parts becomes the new tail. True when `file` is kept as a tail's local copy.
   */
  private async store(id: string, record: SessionRecord, parts: ChunkParts, chunk: { file: string; start: number; length: number }, file: SpoolFile): Promise<boolean> {
    const tailBytes = record.tail.reduce((sum, t) => sum + t.size, 0);
    const offset = record.size;
    if (tailBytes + chunk.length < MIN_PART) {
      await this.putTail(id, offset, [chunk], file, chunk.length);
      record.tail.push({ offset, size: chunk.length });
      record.size += chunk.length;
      await this.save(id, record);
      return true;
    }
    const remainder = await parts.finish(tailBytes + chunk.length);
    const joined = record.tail;
    record.multipart = parts.multipart;
    record.tail = [];
    record.size += chunk.length;
    if (remainder > 0) {
      const copy = await this.driver.spool.create(TAILS);
      try {
        await copy.handle.writeFile(await pieceBytes({ file: chunk.file, start: chunk.length - remainder, length: remainder }));
        copy.grew(remainder);
        await this.putTail(id, record.size - remainder, [{ file: copy.path, start: 0, length: remainder }], copy, remainder);
      } catch (err) {
        await copy.release();
        throw err;
      }
      record.tail.push({ offset: record.size - remainder, size: remainder });
    }
    await this.save(id, record);
    await this.dropTails(id, joined);
    return false;
  }

  private async putTail(id: string, offset: number, pieces: Piece[], file: SpoolFile, length: number): Promise<void> {
    const path = tailPath(id, offset);
    await this.bucket.put(path, piecesBody(pieces));
    this.driver.index.present(path, { size: length, modified: new Date() });
    this.localTails.set(path, file);
  }

  async complete(id: string, digest: Digest, body?: Readable): Promise<UploadSession> {
    if (body) {
      const record = await this.lock.run(id, () => this.require(id));
      if (record.size > 0) {
        await this.append(id, undefined, body);
      } else {
        // Everything arrives now and its digest is known: straight onto the digest's key.
        const { size } = await this.blobs.ingest(body, { expected: digest });
        await this.lock.run(id, () => this.remove(id, record));
        return session(id, { ...record, size });
      }
    }
    return this.lock.run(id, async () => {
      const record = await this.require(id);
      const running = this.running.get(id);
      const verified = digest.algorithm === "sha256" && running?.bytes === record.size;
      if (verified) {
        const actual = Digest.fromHash("sha256", running.hash.copy());
        if (!actual.equals(digest)) throw new DigestMismatchError(digest, actual);
      }
      if (!record.multipart) {
        const bytes = Buffer.concat(await Promise.all((await this.tailPieces(id, record)).map(pieceBytes)));
        await this.blobs.ingestBuffer(bytes, digest);
      } else {
        const tail = await this.tailPieces(id, record);
        const parts = record.multipart.parts.map((p) => ({ PartNumber: p.number, ETag: p.etag }));
        if (record.tail.length > 0) {
          const length = record.tail.reduce((sum, t) => sum + t.size, 0);
          parts.push(await this.bucket.uploadPart(dataPath(id), record.multipart.uploadId, parts.length + 1, piecesBody(slice(tail, 0, length))));
        }
        await this.bucket.completeMultipart(dataPath(id), record.multipart.uploadId, parts);
        this.driver.index.present(dataPath(id), { size: record.size, modified: new Date() });
        record.multipart = undefined;
        if (!verified) await this.verify(dataPath(id), digest);
        await this.blobs.adopt(dataPath(id), digest);
      }
      await this.remove(id, record);
      return session(id, record);
    });
  }

  /** Reads a completed upload back, hashing it: for sessions whose running hash a restart lost. */
  private async verify(path: string, digest: Digest): Promise<void> {
    const opened = await this.driver.open(path);
    if (!opened) throw new Error(`upload ${path} vanished`);
    const hash = createHash(digest.algorithm);
    for await (const chunk of opened.stream as AsyncIterable<Buffer>) hash.update(chunk);
    const actual = Digest.fromHash(digest.algorithm, hash);
    if (!actual.equals(digest)) throw new DigestMismatchError(digest, actual);
  }

  async cancel(id: string): Promise<void> {
    await this.lock.run(id, async () => {
      const record = await this.record(id);
      if (record) await this.remove(id, record);
    });
  }

  /** Closes the local copies of tails (the tail objects stay in S3). */
  async close(): Promise<void> {
    for (const file of this.localTails.values()) await file.release();
    this.localTails.clear();
  }

  settled(): Promise<void> {
    return this.lock.settled();
  }

  async ids(): Promise<string[]> {
    return (await this.driver.list(ROOT)).filter((id) => ID_PATTERN.test(id));
  }

  /**
   * Aborts the session's multipart upload, then drops the record before the rest: a crash
   * part-way leaves no session, and what is left is unreachable (and collected).
   */
  private async remove(id: string, record: SessionRecord): Promise<void> {
    this.running.delete(id);
    if (record.multipart) await this.bucket.abortMultipart(dataPath(id), record.multipart.uploadId);
    await this.driver.delete(`${ROOT}/${id}/info`);
    await this.driver.delete(`${ROOT}/${id}`);
    for (const tail of record.tail) await this.localTails.get(tailPath(id, tail.offset))?.release();
    for (const tail of record.tail) this.localTails.delete(tailPath(id, tail.offset));
  }

  private async dropTails(id: string, tails: SessionRecord["tail"]): Promise<void> {
    if (tails.length === 0) return;
    const paths = tails.map((t) => tailPath(id, t.offset));
    await this.bucket.delete(paths);
    for (const path of paths) {
      this.driver.index.absent(path);
      await this.localTails.get(path)?.release();
      this.localTails.delete(path);
    }
  }

  /** The tail's bytes, in order: local copies where this process wrote them, else read from S3. */
  private async tailPieces(id: string, record: SessionRecord): Promise<Piece[]> {
    const pieces: Piece[] = [];
    for (const tail of record.tail) {
      const path = tailPath(id, tail.offset);
      const local = this.localTails.get(path);
      if (local) {
        pieces.push({ file: local.path, start: 0, length: tail.size });
        continue;
      }
      const bytes = await this.bucket.getBytes(path);
      if (!bytes || bytes.length !== tail.size) throw new Error(`upload ${id}: tail object at ${tail.offset} is missing or torn`);
      pieces.push({ bytes });
    }
    return pieces;
  }

  private async record(id: string): Promise<SessionRecord | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    const data = await this.driver.readSmall(`${ROOT}/${id}/info`);
    return data && (JSON.parse(data.toString("utf8")) as SessionRecord);
  }

  private async require(id: string): Promise<SessionRecord> {
    const record = await this.record(id);
    if (!record) throw new UploadUnknownError(id);
    return record;
  }

  private async save(id: string, record: SessionRecord): Promise<void> {
    await this.driver.writeSmall(`${ROOT}/${id}/info`, JSON.stringify(record));
  }
}

/** Part uploads in flight per chunk while it arrives. */
const PARTS_IN_FLIGHT = 2;

/**
 * The parts one chunk adds to a session's multipart upload, cut from the session's tail
 * followed by the chunk: each full part is uploaded as soon as its bytes are in the spool,
 * two at a time, so a large PATCH is on its way to S3 while it still arrives.
 */
class ChunkParts {
  failure?: Error;
  multipart?: NonNullable<SessionRecord["multipart"]>;
  private creating?: Promise<string>;
  /** Bytes of tail + chunk handed to part uploads so far. */
  private cut = 0;
  private received = 0;
  private started = 0;
  private readonly uploads = new Set<Promise<void>>();
  private readonly done: { number: number; etag: string; size: number }[] = [];
  private readonly tailBytes: number;

  constructor(
    private readonly bucket: S3UploadStore["bucket"],
    private readonly path: string,
    record: SessionRecord,
    private readonly tail: Piece[],
    private readonly chunkFile: string,
    private readonly partSize: number,
  ) {
    this.multipart = record.multipart && { uploadId: record.multipart.uploadId, parts: [...record.multipart.parts] };
    this.tailBytes = record.tail.reduce((sum, t) => sum + t.size, 0);
  }

  /** The chunk's first `bytes` are in the spool: starts the full parts they complete. */
  arrived(bytes: number): void {
    this.received = bytes;
    while (!this.failure && this.uploads.size < PARTS_IN_FLIGHT && this.tailBytes + this.received - this.cut >= this.partSize) this.start(this.partSize);
  }

  /**
   * The chunk has all arrived (`total` bytes with the tail): uploads what is left as parts, the
   * last taking the remainder, or leaves a remainder under 5 MiB after full parts to the
   * caller; returns that remainder.
   */
  async finish(total: number): Promise<number> {
    this.received = total - this.tailBytes;
    for (;;) {
      await this.settled();
      if (this.failure) throw this.failure;
      const left = total - this.cut;
      if (left === 0) break;
      if (left < MIN_PART && this.cut > 0) return this.complete(left);
      if (left >= 2 * this.partSize) {
        this.arrived(this.received);
        continue;
      }
      this.start(left);
    }
    return this.complete(0);
  }

  private async complete(remainder: number): Promise<number> {
    const parts = [...this.multipart!.parts, ...this.done].sort((a, b) => a.number - b.number);
    this.multipart = { uploadId: this.multipart!.uploadId, parts };
    return remainder;
  }

  async settled(): Promise<void> {
    while (this.uploads.size > 0) await Promise.all([...this.uploads]);
    await this.creating?.catch(() => {});
  }

  private start(length: number): void {
    const start = this.cut;
    this.cut += length;
    const index = this.started++;
    const upload = (async () => {
      const uploadId = await this.uploadId();
      const number = this.multipart!.parts.length + index + 1;
      const pieces = slice([...this.tail, { file: this.chunkFile, start: 0, length: this.received }], start, length);
      const part = await this.bucket.uploadPart(this.path, uploadId, number, piecesBody(pieces));
      this.done.push({ number, etag: part.ETag, size: length });
    })().then(
      () => {
        this.uploads.delete(upload);
        this.arrived(this.received);
      },
      (err: unknown) => {
        this.uploads.delete(upload);
        this.failure ??= err as Error;
      },
    );
    this.uploads.add(upload);
  }

  private uploadId(): Promise<string> {
    this.creating ??= this.multipart
      ? Promise.resolve(this.multipart.uploadId)
      : this.bucket.createMultipart(this.path).then((uploadId) => {
          this.multipart = { uploadId, parts: [] };
          return uploadId;
        });
    return this.creating;
  }
}

function session(id: string, record: SessionRecord): UploadSession {
  return { id, repository: record.repository, size: record.size, startedAt: record.startedAt };
}

export function dataPath(id: string): string {
  return `${ROOT}/${id}/data`;
}

function tailPath(id: string, offset: number): string {
  return `${ROOT}/${id}/tail/${offset.toString().padStart(16, "0")}`;
}

/** The pieces' bytes [start, start + length), as pieces. */
function slice(pieces: Piece[], start: number, length: number): Piece[] {
  const out: Piece[] = [];
  let at = 0;
  for (const piece of pieces) {
    const size = "bytes" in piece ? piece.bytes.length : piece.length;
    const from = Math.max(start, at);
    const to = Math.min(start + length, at + size);
    if (from < to) {
      out.push("bytes" in piece ? { bytes: piece.bytes.subarray(from - at, to - at) } : { file: piece.file, start: piece.start + from - at, length: to - from });
    }
    at += size;
  }
  return out;
}

function piecesBody(pieces: Piece[]): Body {
  const length = pieces.reduce((sum, p) => sum + ("bytes" in p ? p.bytes.length : p.length), 0);
  return {
    length,
    open: () =>
      Readable.from(
        (async function* () {
          for (const piece of pieces) {
            if ("bytes" in piece) yield piece.bytes;
            else if (piece.length > 0) yield* createReadStream(piece.file, { start: piece.start, end: piece.start + piece.length - 1, highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>;
          }
        })(),
      ),
  };
}

async function pieceBytes(piece: Piece): Promise<Buffer> {
  if ("bytes" in piece) return piece.bytes;
  const chunks: Buffer[] = [];
  for await (const chunk of piecesBody([piece]).open() as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}
