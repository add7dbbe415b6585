import type { Readable } from "node:stream";
import type { Digest } from "../reference/digest.js";

/** Blob upload sessions: chunks appended in order, then verified and placed in the blob store. */
export interface Uploads {
  create(repository: string): Promise<UploadSession>;
  get(id: string): Promise<UploadSession | undefined>;
  /** Appends a chunk that must start at `offset` (the session's current size); UploadOffsetError otherwise. */
  append(id: string, offset: number | undefined, source: Readable, maxSize?: number): Promise<UploadSession>;
  /** Appends `body`, when given, then verifies the whole upload against `digest` and places it in the blob store. */
  complete(id: string, digest: Digest, body?: Readable): Promise<UploadSession>;
  cancel(id: string): Promise<void>;
  /** Upload session ids, for expiring abandoned sessions. */
  ids(): Promise<string[]>;
  /** Resolves once no chunk is being received or placed and no upload is being completed. */
  settled(): Promise<void>;
}

export interface UploadSession {
  id: string;
  repository: string;
  /** Bytes received so far. */
  size: number;
  startedAt: string;
}

/** Raised when a chunk does not start where the upload currently ends. */
export class UploadOffsetError extends Error {
  constructor(readonly size: number) {
    super(`upload is at ${size} bytes`);
  }
}

/** Raised when a chunk's source failed part-way; the bytes that arrived were kept. */
export class UploadInterruptedError extends Error {
  constructor(
    readonly size: number,
    cause: unknown,
  ) {
    super(`chunk cut off; upload is at ${size} bytes`, { cause });
  }
}

export class UploadUnknownError extends Error {
  constructor(readonly id: string) {
    super(`upload ${id} unknown`);
  }
}
