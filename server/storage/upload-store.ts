import { createHash, randomUUID, type Hash } from "node:crypto";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KeyedLock } from "../concurrency/keyed-lock.js";
import { Digest } from "../reference/digest.js";
import { BlobStore, DigestMismatchError } from "./blob-store.js";
import { MeteredChunks } from "./metered-chunks.js";
import type { StorageDriver } from "./driver.js";
import { UploadInterruptedError, UploadOffsetError, UploadUnknownError, type Uploads, type UploadSession } from "./uploads.js";

interface RunningHash {
  hash: Hash;
  bytes: number;
}

const ROOT = "uploads";
const ID_PATTERN = /^[a-f0-9-]{36}$/;

/**
 * Blob upload sessions. Each chunk is stored as its own part, placed atomically once it is
 * received (or once its client went away: what arrived is the part), so a session survives
 * restarts and a crash leaves every part whole as it was placed or absent (the client can
 * query and resume). Completing an upload verifies the digest and moves the content into
 * the blob store.
 */
export class UploadStore implements Uploads {
  private readonly lock = new KeyedLock();
  /** sha256 over the parts so far, kept while chunks arrive in order in this process. */
  private readonly running = new Map<string, RunningHash>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: BlobStore,
  ) {}

  async create(repository: string): Promise<UploadSession> {
    const session: UploadSession = { id: randomUUID(), repository, size: 0, startedAt: new Date().toISOString() };
    await this.driver.writeSmall(`${ROOT}/${session.id}/info`, JSON.stringify({ repository, startedAt: session.startedAt }));
    this.running.set(session.id, { hash: createHash("sha256"), bytes: 0 });
    return session;
  }

  async get(id: string): Promise<UploadSession | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    const info = await this.driver.readSmall(`${ROOT}/${id}/info`);
    if (!info) return undefined;
    const { repository, startedAt } = JSON.parse(info.toString("utf8")) as { repository: string; startedAt: string };
    const parts = await this.parts(id);
    const size = parts.reduce((sum, p) => sum + p.size, 0);
    return { id, repository, size, startedAt };
  }

  /**
   * Appends a chunk that must start at `offset` (the session's current size). When the source
   * fails part-way (the client went away, or was cut as idle), the bytes that arrived are kept
   * as a part and UploadInterruptedError tells the session's new size, as Distribution keeps
   * them: the client resumes from there instead of sending the whole chunk again.
   */
  async append(id: string, offset: number | undefined, source: Readable, maxSize?: number): Promise<UploadSession> {
    return this.lock.run(id, async () => {
      const session = await this.require(id);
      if (offset !== undefined && offset !== session.size) throw new UploadOffsetError(session.size);
      const running = this.running.get(id);
      const hashing = running && running.bytes === session.size ? running : undefined;
      this.running.delete(id);
      const metered = new MeteredChunks(maxSize, (chunk) => hashing?.hash.update(chunk));
      const received = new UntilFailure(source);
      const pending = await this.driver.createPending();
      try {
        // The source's failure ends the chunk like its end would, so every byte hashed is written.
        await pipeline(received.chunks(), metered.stage, pending.stream);
        if (metered.bytes > 0) await pending.commit(`${ROOT}/${id}/parts/${partName(session.size)}`);
        else await pending.discard();
      } catch (err) {
        await pending.discard();
        throw err;
      }
      if (hashing) this.running.set(id, { hash: hashing.hash, bytes: session.size + metered.bytes });
      const size = session.size + metered.bytes;
      if (received.failure !== undefined) throw new UploadInterruptedError(size, received.failure);
      return { ...session, size };
    });
  }

  /** Appends `body`, when given, then verifies the whole upload against `digest` and places it in the blob store. */
  async complete(id: string, digest: Digest, body?: Readable): Promise<UploadSession> {
    if (body) await this.append(id, undefined, body);
    return this.lock.run(id, async () => {
      const session = await this.require(id);
      const parts = await this.parts(id);
      const running = this.running.get(id);
      if (digest.algorithm === "sha256" && running?.bytes === session.size && parts.length === 1) {
        const actual = Digest.fromHash("sha256", running.hash.copy());
        if (!actual.equals(digest)) throw new DigestMismatchError(digest, actual);
        await this.blobs.adopt(parts[0].path, digest);
      } else {
        const driver = this.driver;
        await this.blobs.ingest(
          (async function* () {
            for (const part of parts) {
              const opened = await driver.open(part.path);
              if (!opened) throw new Error(`upload part ${part.path} vanished`);
              yield* opened.stream as AsyncIterable<Buffer>;
            }
          })(),
          { expected: digest },
        );
      }
      await this.remove(id);
      return session;
    });
  }

  async cancel(id: string): Promise<void> {
    await this.lock.run(id, () => this.remove(id));
  }

  /** Resolves once no chunk is being received or placed and no upload is being completed. */
  settled(): Promise<void> {
    return this.lock.settled();
  }

  /** Upload session ids, for expiring abandoned sessions. */
  async ids(): Promise<string[]> {
    return (await this.driver.list(ROOT)).filter((id) => ID_PATTERN.test(id));
  }

  /** `info` goes first: a crash part-way through leaves no session, never one missing some parts. */
  private async remove(id: string): Promise<void> {
    this.running.delete(id);
    await this.driver.delete(`${ROOT}/${id}/info`);
    await this.driver.delete(`${ROOT}/${id}`);
  }

  private async require(id: string): Promise<UploadSession> {
    const session = await this.get(id);
    if (!session) throw new UploadUnknownError(id);
    return session;
  }

  private async parts(id: string): Promise<{ path: string; size: number }[]> {
    const names = (await this.driver.list(`${ROOT}/${id}/parts`)).sort();
    const parts: { path: string; size: number }[] = [];
    for (const name of names) {
      const path = `${ROOT}/${id}/parts/${name}`;
      const info = await this.driver.stat(path);
      if (info) parts.push({ path, size: info.size });
    }
    return parts;
  }
}

/** A chunk's source, ending where it failed instead of failing: the bytes that arrived are kept. */
export class UntilFailure {
  failure?: unknown;

  constructor(private readonly source: Readable) {}

  async *chunks(): AsyncGenerator<Buffer> {
    try {
      yield* this.source as AsyncIterable<Buffer>;
    } catch (err) {
      this.failure = err;
    }
  }
}

/** Zero-padded so that lexical order is offset order. */
function partName(offset: number): string {
  return offset.toString().padStart(16, "0");
}
