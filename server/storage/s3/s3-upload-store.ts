import { createHash, randomBytes, randomUUID, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Digest } from "../../reference/digest.js";
import { BlobStore, DigestMismatchError } from "../blob-store.js";
import { MeteredChunks } from "../metered-chunks.js";
import { ProcessSessionHashes, type SessionHashes } from "../session-hashes.js";
import { ProcessUploadLocks, type HeldSession, type UploadLocks } from "../upload-locks.js";
import { UntilFailure } from "../upload-store.js";
import { UploadInterruptedError, UploadOffsetError, UploadUnknownError, type Uploads, type UploadSession } from "../uploads.js";
import { LocalTails, type TailRef } from "./local-tails.js";
import type { Body } from "./s3-bucket.js";
import type { S3Driver } from "./s3-driver.js";
import type { SpoolFile } from "./spool.js";

/** S3's smallest part (but the last). */
const MIN_PART = 5 * 1024 * 1024;
const ROOT = "uploads";
/** Spool subdirectory of chunks (those kept are local copies of tail objects). */
const TAILS = "uploads";
const ID_PATTERN = /^[a-f0-9-]{36}$/;

/**
 * What `uploads/<id>/info` records of a session: everything needed to resume it after a
 * restart, or on another replica. Written whole after every chunk, so its parts (with their
 * ETags, which S3 checks at completion), its tail objects (with their checksums, which berth
 * checks before using them) and its hash state always describe the same bytes.
 */
interface SessionRecord {
  repository: string;
  startedAt: string;
  size: number;
  /** The session's multipart upload, once its chunks filled a part. */
  multipart?: {
    uploadId: string;
    parts: { number: number; etag: string; size: number }[];
    /** The key it writes, `uploads/<id>/data-<random>`: one per multipart upload. Absent in older records: `uploads/<id>/data`. */
    path?: string;
  };
  /** Chunks not yet joined to a part, each the object `uploads/<id>/tail/<offset>`; together shorter than a part. */
  tail: { offset: number; size: number; sha256?: string }[];
  /** The sha256 state of the session's `size` bytes, when its hash is saved with the record (SavedSessionHashes). */
  sha256?: string;
}

/** A run of bytes a part is made of: from a local file or from memory. */
type Piece = { file: string; start: number; length: number } | { bytes: Buffer };

/**
 * Blob upload sessions on S3. Each session is one multipart upload: a chunk that, with the
 * tail before it, fills at least a 5 MiB part is uploaded as parts while it arrives; a shorter
 * one (or what is left under 5 MiB after full parts) is kept as a tail object and joined to
 * the next chunk's first part. So a small chunk costs O(tail), never O(upload) (Distribution's
 * S3 driver re-copies the whole upload on every chunk under 5 MiB), and 1 MiB chunks send each
 * byte at most twice before the final copy. The session record, with the sha256 state of
 * what it holds, is rewritten after every chunk; a crash leaves the session at its last
 * recorded chunk, and any process (a replica that never saw a chunk of it) can take the next
 * chunk or complete it, verifying the digest from the saved state without reading the upload
 * back. Completion copies the upload under its digest; a session that received everything in
 * its completing request (`?digest=` pushes) writes straight onto the digest's key instead.
 */
export class S3UploadStore implements Uploads {
  /** Sessions a task of this process holds now. */
  private readonly busy = new Set<string>();
  private readonly localTails = new LocalTails((id) => this.busy.has(id));

  constructor(
    private readonly driver: S3Driver,
    private readonly blobs: BlobStore,
    private readonly locks: UploadLocks = new ProcessUploadLocks(),
    private readonly hashes: SessionHashes = new ProcessSessionHashes(),
  ) {}

  private get bucket() {
    return this.driver.bucket;
  }

  async create(repository: string): Promise<UploadSession> {
    const id = randomUUID();
    const record: SessionRecord = { repository, startedAt: new Date().toISOString(), size: 0, tail: [], sha256: await this.hashes.start(id) };
    await this.save(id, record);
    return session(id, record);
  }

  async get(id: string): Promise<UploadSession | undefined> {
    const record = await this.record(id);
    return record && session(id, record);
  }

  async append(id: string, offset: number | undefined, source: Readable, maxSize?: number): Promise<UploadSession> {
    return this.exclusive(id, async (held) => {
      const record = await this.require(id);
      if (offset !== undefined && offset !== record.size) throw new UploadOffsetError(record.size);
      const hash = await this.hashes.take(id, record);
      // A chunk short enough to become the tail is checksummed as it arrives.
      const room = MIN_PART - tailBytes(record);
      let tailHash: Hash | undefined = createHash("sha256");
      const metered = new MeteredChunks(maxSize, (chunk) => {
        hash?.update(chunk);
        if (metered.bytes < room) tailHash?.update(chunk);
        else tailHash = undefined;
      });
      const received = new UntilFailure(source);
      const file = await this.driver.spool.create(TAILS);
      const data = record.multipart ? dataPath(id, record.multipart) : newDataPath(id);
      const parts = new ChunkParts(this.bucket, data, record, await this.tailPieces(id, record), file.path, this.driver.partSize);
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
        const saved = hash && this.hashes.keep(id, hash, record.size + length);
        if (length > 0) kept = await this.store(id, record, parts, { file, length, sha256: tailHash?.digest("hex") }, saved, held);
      } finally {
        await parts.settled();
        if (!kept) await file.release();
      }
      if (received.failure !== undefined) throw new UploadInterruptedError(record.size, received.failure);
      return session(id, record);
    });
  }

  /**
   * Adds a received chunk to the session, with the hash state now covering it: as parts when,
   * with the tail before it, it fills one (full parts already went up while it arrived), else
   * as a tail object; a remainder under 5 MiB after full parts becomes the new tail. True when
   * the chunk's spool file is kept as a tail's local copy.
   */
  private async store(id: string, record: SessionRecord, parts: ChunkParts, chunk: { file: SpoolFile; length: number; sha256?: string }, hash: string | undefined, held: HeldSession): Promise<boolean> {
    const offset = record.size;
    record.sha256 = hash;
    if (tailBytes(record) + chunk.length < MIN_PART) {
      const sha256 = chunk.sha256!;
      await this.putTail(id, { offset, size: chunk.length, sha256 }, [{ file: chunk.file.path, start: 0, length: chunk.length }], chunk.file);
      record.tail.push({ offset, size: chunk.length, sha256 });
      record.size += chunk.length;
      await this.save(id, record, held);
      return true;
    }
    const remainder = await parts.finish(tailBytes(record) + chunk.length);
    const joined = record.tail;
    record.multipart = parts.multipart;
    record.tail = [];
    record.size += chunk.length;
    if (remainder > 0) {
      const bytes = await pieceBytes({ file: chunk.file.path, start: chunk.length - remainder, length: remainder });
      const tail = { offset: record.size - remainder, size: remainder, sha256: createHash("sha256").update(bytes).digest("hex") };
      const copy = await this.driver.spool.create(TAILS);
      try {
        await copy.handle.writeFile(bytes);
        copy.grew(remainder);
        await this.putTail(id, tail, [{ file: copy.path, start: 0, length: remainder }], copy);
      } catch (err) {
        await copy.release();
        throw err;
      }
      record.tail.push(tail);
    }
    await this.save(id, record, held);
    await this.dropTails(id, joined);
    return false;
  }

  private async putTail(id: string, tail: { offset: number; size: number; sha256: string }, pieces: Piece[], file: SpoolFile): Promise<void> {
    const path = tailPath(id, tail.offset);
    await this.bucket.put(path, piecesBody(pieces));
    this.driver.index.present(path, { size: tail.size, modified: new Date() });
    this.localTails.keep(id, { path, sha256: tail.sha256 }, file);
  }

  async complete(id: string, digest: Digest, body?: Readable): Promise<UploadSession> {
    if (body) {
      const record = await this.exclusive(id, () => this.require(id));
      if (record.size > 0) {
        await this.append(id, undefined, body);
      } else {
        // Everything arrives now and its digest is known: straight onto the digest's key.
        const { size } = await this.blobs.ingest(body, { expected: digest });
        await this.exclusive(id, async () => {
          const current = await this.record(id);
          if (current) await this.remove(id, current);
        });
        return session(id, { ...record, size });
      }
    }
    return this.exclusive(id, async (held) => {
      const record = await this.require(id);
      const hash = digest.algorithm === "sha256" ? await this.hashes.take(id, record) : undefined;
      if (hash) {
        this.hashes.keep(id, hash, record.size);
        const actual = hash.digest();
        if (!actual.equals(digest)) throw new DigestMismatchError(digest, actual);
      }
      if (!record.multipart) {
        const bytes = Buffer.concat(await Promise.all((await this.tailPieces(id, record)).map(pieceBytes)));
        await this.blobs.ingestBuffer(bytes, digest);
      } else {
        const data = dataPath(id, record.multipart);
        const tail = await this.tailPieces(id, record);
        const parts = record.multipart.parts.map((p) => ({ PartNumber: p.number, ETag: p.etag }));
        if (record.tail.length > 0) {
          parts.push(await this.bucket.uploadPart(data, record.multipart.uploadId, parts.length + 1, piecesBody(slice(tail, 0, tailBytes(record)))));
        }
        await held.confirm();
        await this.bucket.completeMultipart(data, record.multipart.uploadId, parts);
        this.driver.index.present(data, { size: record.size, modified: new Date() });
        record.multipart = undefined;
        if (!hash) await this.verify(data, digest);
        await this.blobs.adopt(data, digest);
      }
      await this.remove(id, record);
      return session(id, record);
    });
  }

  /** Reads a completed upload back, hashing it: for digests other than sha256, and records without a hash state. */
  private async verify(path: string, digest: Digest): Promise<void> {
    const opened = await this.driver.open(path);
    if (!opened) throw new Error(`upload ${path} vanished`);
    const hash = createHash(digest.algorithm);
    for await (const chunk of opened.stream as AsyncIterable<Buffer>) hash.update(chunk);
    const actual = Digest.fromHash(digest.algorithm, hash);
    if (!actual.equals(digest)) throw new DigestMismatchError(digest, actual);
  }

  async cancel(id: string): Promise<void> {
    await this.exclusive(id, async () => {
      const record = await this.record(id);
      if (record) await this.remove(id, record);
    });
  }

  /** Closes the local copies of tails (the tail objects stay in S3). */
  async close(): Promise<void> {
    await this.localTails.close();
  }

  settled(): Promise<void> {
    return this.locks.settled();
  }

  async ids(): Promise<string[]> {
    return (await this.driver.list(ROOT)).filter((id) => ID_PATTERN.test(id));
  }

  /** Runs `task` holding the session (cluster-wide with replicas), its local tail copies kept meanwhile. */
  private exclusive<T>(id: string, task: (held: HeldSession) => Promise<T>): Promise<T> {
    return this.locks.run(id, async (held) => {
      this.busy.add(id);
      try {
        return await task(held);
      } finally {
        this.busy.delete(id);
      }
    });
  }

  /**
   * Aborts the session's multipart upload, then drops the record before the rest: a crash
   * part-way leaves no session, and what is left is unreachable (and collected). The tail
   * objects are named from the record: another replica may have written them.
   */
  private async remove(id: string, record: SessionRecord): Promise<void> {
    this.hashes.forget(id);
    if (record.multipart) await this.bucket.abortMultipart(dataPath(id, record.multipart), record.multipart.uploadId);
    await this.driver.delete(infoPath(id));
    await this.dropTails(id, record.tail);
    await this.driver.delete(`${ROOT}/${id}`);
    await this.localTails.forget(id);
  }

  private async dropTails(id: string, tails: SessionRecord["tail"]): Promise<void> {
    if (tails.length === 0) return;
    const paths = tails.map((t) => tailPath(id, t.offset));
    await this.bucket.delete(paths);
    for (const path of paths) {
      this.driver.index.absent(path);
      await this.localTails.release(id, path);
    }
  }

  /**
   * The tail's bytes, in order: local copies where this process wrote exactly those bytes,
   * else read from S3 (all at once), each checked against the record's checksum.
   */
  private async tailPieces(id: string, record: SessionRecord): Promise<Piece[]> {
    const refs: TailRef[] = record.tail.map((t) => ({ path: tailPath(id, t.offset), ...(t.sha256 ? { sha256: t.sha256 } : {}) }));
    await this.localTails.retain(id, refs);
    return Promise.all(
      record.tail.map(async (tail, i): Promise<Piece> => {
        const local = this.localTails.find(id, refs[i]);
        if (local) return { file: local, start: 0, length: tail.size };
        const bytes = await this.bucket.getBytes(refs[i].path);
        if (!bytes || bytes.length !== tail.size || (tail.sha256 !== undefined && createHash("sha256").update(bytes).digest("hex") !== tail.sha256)) {
          throw new Error(`upload ${id}: tail object at ${tail.offset} is missing or does not hold the bytes its session recorded`);
        }
        return { bytes };
      }),
    );
  }

  /** The session's record: from memory when this process alone changes sessions, else from S3 itself. */
  private async record(id: string): Promise<SessionRecord | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    const data = this.locks.shared ? await this.readFresh(infoPath(id)) : await this.driver.readSmall(infoPath(id));
    return data && (JSON.parse(data.toString("utf8")) as SessionRecord);
  }

  private async readFresh(path: string): Promise<Buffer | undefined> {
    const bytes = await this.bucket.getBytes(path);
    if (bytes === undefined) this.driver.index.absent(path);
    else this.driver.index.present(path, { size: bytes.length, modified: new Date() }, bytes);
    return bytes;
  }

  private async require(id: string): Promise<SessionRecord> {
    const record = await this.record(id);
    if (!record) throw new UploadUnknownError(id);
    return record;
  }

  /** Writes the session's record; `held` (absent for a new session) is confirmed first. */
  private async save(id: string, record: SessionRecord, held?: HeldSession): Promise<void> {
    await held?.confirm();
    await this.driver.writeSmall(infoPath(id), JSON.stringify(record));
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
    this.multipart = record.multipart && { ...record.multipart, parts: [...record.multipart.parts] };
    this.tailBytes = tailBytes(record);
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
    this.multipart = { ...this.multipart!, parts };
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
          this.multipart = { uploadId, parts: [], path: this.path };
          return uploadId;
        });
    return this.creating;
  }
}

function session(id: string, record: SessionRecord): UploadSession {
  return { id, repository: record.repository, size: record.size, startedAt: record.startedAt };
}

function infoPath(id: string): string {
  return `${ROOT}/${id}/info`;
}

/** The key a session's multipart upload writes. */
function dataPath(id: string, multipart: NonNullable<SessionRecord["multipart"]>): string {
  return multipart.path ?? `${ROOT}/${id}/data`;
}

/**
 * A key of its own for each multipart upload of a session: two replicas that both started
 * one (while Redis was down) never complete onto the same key and copy each other's bytes.
 */
function newDataPath(id: string): string {
  return `${ROOT}/${id}/data-${randomBytes(8).toString("hex")}`;
}

function tailBytes(record: SessionRecord): number {
  return record.tail.reduce((sum, t) => sum + t.size, 0);
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
