import { createHash, type Hash } from "node:crypto";
import { Digest } from "../reference/digest.js";
import { ResumableSha256 } from "./resumable-sha256.js";

/** The running sha256 of an upload session's bytes so far. */
export interface SessionHash {
  update(chunk: Buffer): void;
  /** The digest of the bytes so far; the hash can go on. */
  digest(): Digest;
  /** Its state, for the session's record; undefined for a hash that cannot leave this process. */
  save(): string | undefined;
}

/**
 * Where an upload session's running sha256 lives between its chunks, so completion verifies
 * the digest without reading the upload back: in this process alone, or in the session's
 * record, for whichever process takes the next chunk. An upload store takes a session's hash
 * at the start of each chunk and keeps it once the chunk is stored; a hash taken and not kept
 * is gone (completion then reads the upload back).
 */
export interface SessionHashes {
  /** A new session's hash; what its record stores of it (undefined: nothing). */
  start(id: string): Promise<string | undefined>;
  /** The hash of the session's first `record.size` bytes, if known. */
  take(id: string, record: { size: number; sha256?: string }): Promise<SessionHash | undefined>;
  /** `hash` now covers the session's first `size` bytes; returns what the record stores of it. */
  keep(id: string, hash: SessionHash, size: number): string | undefined;
  forget(id: string): void;
}

/** Hashes kept in this process (node:crypto, the fastest sha256 here): a restart loses them. */
export class ProcessSessionHashes implements SessionHashes {
  private readonly running = new Map<string, { hash: SessionHash; bytes: number }>();

  async start(id: string): Promise<undefined> {
    this.running.set(id, { hash: new NodeSha256(createHash("sha256")), bytes: 0 });
    return undefined;
  }

  async take(id: string, record: { size: number }): Promise<SessionHash | undefined> {
    const running = this.running.get(id);
    this.running.delete(id);
    return running?.bytes === record.size ? running.hash : undefined;
  }

  keep(id: string, hash: SessionHash, size: number): undefined {
    this.running.set(id, { hash, bytes: size });
    return undefined;
  }

  forget(id: string): void {
    this.running.delete(id);
  }
}

/**
 * Hashes whose state (hash-wasm's, base64) is saved in the session's record after every
 * chunk, so any replica resumes it: node:crypto cannot export a hash's state.
 */
export class SavedSessionHashes implements SessionHashes {
  private readonly hashes = new ResumableSha256();

  async start(): Promise<string> {
    return (await this.hashes.start()).save();
  }

  async take(_id: string, record: { sha256?: string }): Promise<SessionHash | undefined> {
    return record.sha256 === undefined ? undefined : this.hashes.resume(record.sha256);
  }

  keep(_id: string, hash: SessionHash): string | undefined {
    return hash.save();
  }

  forget(): void {}
}

class NodeSha256 implements SessionHash {
  constructor(private readonly hash: Hash) {}

  update(chunk: Buffer): void {
    this.hash.update(chunk);
  }

  digest(): Digest {
    return Digest.fromHash("sha256", this.hash.copy());
  }

  save(): undefined {
    return undefined;
  }
}
