import { randomUUID } from "node:crypto";
import { mkdir, open, rm, statfs, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { StorageUnavailableError } from "../storage-unavailable-error.js";

/** A file in the spool; `release` removes it and gives its bytes back. */
export interface SpoolFile {
  readonly path: string;
  readonly handle: FileHandle;
  /** Counts bytes written to the file against the spool's cap. */
  grew(bytes: number): void;
  /** Closes and removes the file; open readers keep reading it. Safe to call twice. */
  release(): Promise<void>;
}

/**
 * Local files holding what is being written to S3: a blob being filled (clients joining the
 * fill read it here, not from the bucket) or pushed, a chunk being cut into parts. No fsync:
 * S3 holds the durable copy, and the spool is emptied at start.
 */
export class Spool {
  private used = 0;

  constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {}

  async initialise(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  get usedBytes(): number {
    return this.used;
  }

  /** Refuses (503 + Retry-After) a write of `bytes` the spool or its disk has no room for now. */
  async ensureSpace(bytes: number): Promise<void> {
    if (this.used + bytes > this.maxBytes) {
      throw new StorageUnavailableError(`the spool holds ${this.used} of its ${this.maxBytes} bytes; ${bytes} more do not fit`, 10);
    }
    const info = await statfs(this.dir);
    if (info.bavail * info.bsize < bytes) throw new StorageUnavailableError(`the spool's disk has fewer than ${bytes} bytes free`, 10);
  }

  /** A new file; in `kind`'s own subdirectory when given (upload sessions keep their tails' copies apart). */
  async create(kind?: string): Promise<SpoolFile> {
    if (kind) await mkdir(join(this.dir, kind), { recursive: true, mode: 0o700 });
    const path = join(this.dir, ...(kind ? [kind] : []), randomUUID());
    const handle = await open(path, "wx+", 0o600);
    let size = 0;
    let released = false;
    return {
      path,
      handle,
      grew: (bytes) => {
        size += bytes;
        this.used += bytes;
      },
      release: async () => {
        if (released) return;
        released = true;
        this.used -= size;
        await handle.close().catch(() => {});
        await rm(path, { force: true });
      },
    };
  }
}
