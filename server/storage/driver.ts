import type { Readable, Writable } from "node:stream";

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectInfo {
  size: number;
  modified: Date;
}

/** An object found by `walk`. */
export interface WalkedObject extends ObjectInfo {
  path: string;
}

export interface PendingOptions {
  /**
   * The path `commit` will be given, when known up front (content whose digest is known): an
   * object store then writes there directly, a multipart upload that only `commit` completes,
   * instead of copying the bytes into place at commit.
   */
  target?: string;
}

/** A new object being written; invisible under any path until `commit`. */
export interface PendingObject {
  readonly stream: Writable;
  /** Bytes written so far. */
  readonly written: number;
  /** Waits for the stream to finish, makes the bytes durable and moves them to `path` atomically. */
  commit(path: string): Promise<void>;
  /** Drops the bytes; safe to call more than once and after a failed commit. */
  discard(): Promise<void>;
  /** Reads bytes already written, while writing goes on; stays readable after commit. */
  openReader(): Promise<PendingReader>;
}

/** Positional reads of a pending object's written bytes. */
export interface PendingReader {
  /** Fills `into` with the bytes at `position`; returns how many, fewer only at the end of what is written. */
  read(into: Buffer, position: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * An object's bytes. A driver may also let the stream send itself to a writable (and end
 * it): the filesystem driver does so through a few reused buffers, where piping would
 * allocate one per chunk.
 */
export interface ObjectStream extends Readable {
  sendTo?(destination: Writable): Promise<void>;
}

/**
 * The narrow storage driver every store is built on. Paths are relative, `/`-separated and
 * never contain `.` or `..` segments. A filesystem driver is the default; an object store
 * implements the same operations.
 */
export interface StorageDriver {
  stat(path: string): Promise<ObjectInfo | undefined>;
  /** Opens an object for reading (a range of it, when given); undefined when absent. */
  open(path: string, range?: ByteRange): Promise<{ info: ObjectInfo; stream: ObjectStream } | undefined>;
  readSmall(path: string): Promise<Buffer | undefined>;
  /** Atomically replaces the object at path with data. */
  writeSmall(path: string, data: Buffer | string): Promise<void>;
  createPending(options?: PendingOptions): Promise<PendingObject>;
  move(from: string, to: string): Promise<void>;
  /** Deletes an object, or a whole prefix; absent paths are not an error. */
  delete(path: string): Promise<void>;
  /** Names directly under a prefix (objects and sub-prefixes); empty when absent. */
  list(prefix: string): Promise<string[]>;
  /**
   * Whether a prefix holds any object or sub-prefix, without listing it all: an object store
   * answers with one list request capped at a single key (`max-keys=1`). False when absent.
   */
  hasAny(prefix: string): Promise<boolean>;
  /**
   * Every object under a prefix with its size and modification time, in no particular order:
   * one flat listing (an object store pages through it, no request per object), for
   * collection and audits. Objects written or deleted meanwhile may or may not appear.
   */
  walk(prefix: string): AsyncIterable<WalkedObject>;
  /** Checks the driver can write; throws when it cannot. */
  probeWritable(): Promise<void>;
  /**
   * Throws an ENOSPC error when fewer than `bytes` are free, so that a transfer whose size is
   * known up front is refused before it starts instead of failing part-way. A check, not a
   * reservation: concurrent writers can still run out.
   */
  ensureSpace(bytes: number): Promise<void>;
}
