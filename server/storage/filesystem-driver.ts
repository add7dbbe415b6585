import { randomUUID } from "node:crypto";
import { createWriteStream, constants as fsConstants, type Dir, type Dirent } from "node:fs";
import { chmod, mkdir, open, opendir, readdir, rename, rm, stat, statfs, readFile, type FileHandle } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { once } from "node:events";
import type { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import type { ByteRange, ObjectInfo, ObjectStream, PendingObject, StorageDriver, WalkedObject } from "./driver.js";
import { sendFileRange } from "./chunk-sender.js";
import { LEASE_FILE, RootLease } from "./root-lease.js";

const TEMP_DIR = "_tmp";
/** What the driver keeps at the root for itself: not stored objects. */
const OWN_FILES = new Set([TEMP_DIR, LEASE_FILE]);
/** Stored content is berth's user's alone, whatever the umask (which can only take bits away). */
const PRIVATE_FILE = 0o600;
const PRIVATE_DIR = 0o700;

/**
 * Stores objects as files under one root. Writes land in `_tmp/` and are fsynced and
 * renamed into place, so a crash never leaves a partial object under its real path.
 * One process owns a root (its lease): start-up clears `_tmp/`. Files are 0600 and directories 0700.
 */
export class FilesystemDriver implements StorageDriver {
  private readonly root: string;
  private lease?: RootLease;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /**
   * Creates the root, takes its lease (RootLeasedError when another process holds it), removes
   * temp files a previous process left behind, and closes a store an older berth left readable
   * to others: the root and every entry at its top become 0700 (0600), which bars everyone else
   * from the whole tree without walking it (a directory is traversed only with its x bit). What
   * berth does not own stays as it is: a volume's mount point (Kubernetes' fsGroup leaves it
   * root's, group-writable), whose entries berth made still shut others out, and the
   * `lost+found` of a fresh filesystem.
   */
  async initialise(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: PRIVATE_DIR });
    await chmodOwn(this.root, PRIVATE_DIR);
    this.lease = await RootLease.acquire(this.root);
    await rm(join(this.root, TEMP_DIR), { recursive: true, force: true });
    await mkdir(join(this.root, TEMP_DIR), { recursive: true, mode: PRIVATE_DIR });
    for (const entry of await readdir(this.root, { withFileTypes: true })) {
      if (entry.isDirectory() || entry.isFile()) await chmodOwn(join(this.root, entry.name), entry.isDirectory() ? PRIVATE_DIR : PRIVATE_FILE);
    }
  }

  private file(path: string): string {
    const segments = path.split("/");
    if (path === "" || path.includes("\0") || segments.some((s) => s === "" || s === "." || s === "..")) {
      throw new Error(`invalid storage path ${JSON.stringify(path)}`);
    }
    const full = join(this.root, ...segments);
    if (!full.startsWith(this.root + sep)) throw new Error(`storage path escapes root: ${path}`);
    return full;
  }

  async stat(path: string): Promise<ObjectInfo | undefined> {
    try {
      const s = await stat(this.file(path));
      return { size: s.size, modified: s.mtime };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async open(path: string, range?: ByteRange): Promise<{ info: ObjectInfo; stream: ObjectStream } | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(this.file(path), fsConstants.O_RDONLY);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    try {
      const s = await handle.stat();
      if (s.isDirectory()) {
        await handle.close();
        return undefined;
      }
      const first = range?.start ?? 0;
      const last = Math.min(range?.end ?? Infinity, s.size - 1);
      const stream: ObjectStream = Object.assign(handle.createReadStream({ start: range?.start, end: range?.end, highWaterMark: 1024 * 1024, autoClose: true }), {
        sendTo: async (destination: Writable) => {
          try {
            await sendFileRange(handle, first, last, destination);
          } finally {
            stream.destroy(); // closes the handle, which the read stream owns
          }
        },
      });
      return { info: { size: s.size, modified: s.mtime }, stream };
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
  }

  async readSmall(path: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.file(path));
    } catch (err) {
      if (isNotFound(err) || isDirectory(err)) return undefined;
      throw err;
    }
  }

  async writeSmall(path: string, data: Buffer | string): Promise<void> {
    const target = this.file(path);
    const temp = join(this.root, TEMP_DIR, randomUUID());
    try {
      const handle = await open(temp, "wx", PRIVATE_FILE);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.place(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  async createPending(): Promise<PendingObject> {
    const temp = join(this.root, TEMP_DIR, randomUUID());
    // The stream alone owns the descriptor: it fsyncs (flush) and closes it exactly once, on
    // finish or destroy, so no second close can hit a descriptor number reused meanwhile.
    const stream = createWriteStream(temp, { flags: "wx", mode: PRIVATE_FILE, flush: true, highWaterMark: 1024 * 1024 });
    await once(stream, "ready");
    let state: "open" | "committed" | "discarded" = "open";
    const drop = async () => {
      stream.destroy();
      await finished(stream).catch(() => {});
      await rm(temp, { force: true });
    };
    return {
      stream,
      get written() {
        return stream.bytesWritten;
      },
      commit: async (path: string) => {
        if (state !== "open") throw new Error(`pending object already ${state}`);
        try {
          const target = this.file(path);
          await finished(stream); // resolves once the bytes are fsynced and the descriptor closed
          await this.place(temp, target);
          state = "committed";
        } catch (err) {
          state = "discarded";
          await drop();
          throw err;
        }
      },
      discard: async () => {
        if (state !== "open") return;
        state = "discarded";
        await drop();
      },
      // The descriptor outlives the rename in commit, so readers keep reading the placed file.
      openReader: async () => {
        const reader = await open(temp, fsConstants.O_RDONLY);
        return {
          read: async (into: Buffer, position: number) => (await reader.read(into, 0, into.length, position)).bytesRead,
          close: () => reader.close(),
        };
      },
    };
  }

  async move(from: string, to: string): Promise<void> {
    await this.place(this.file(from), this.file(to));
  }

  async delete(path: string): Promise<void> {
    const target = this.file(path);
    await rm(target, { recursive: true, force: true });
  }

  async list(prefix: string): Promise<string[]> {
    try {
      return (await readdir(prefix === "" ? this.root : this.file(prefix))).filter((n) => prefix !== "" || !OWN_FILES.has(n));
    } catch (err) {
      if (isNotFound(err) || isNotDirectory(err)) return [];
      throw err;
    }
  }

  async hasAny(prefix: string): Promise<boolean> {
    let dir: Dir;
    try {
      dir = await opendir(prefix === "" ? this.root : this.file(prefix), { bufferSize: 1 });
    } catch (err) {
      if (isNotFound(err) || isNotDirectory(err)) return false;
      throw err;
    }
    try {
      for (let entry = await dir.read(); entry; entry = await dir.read()) {
        if (prefix !== "" || !OWN_FILES.has(entry.name)) return true;
      }
      return false;
    } finally {
      await dir.close();
    }
  }

  async *walk(prefix: string): AsyncGenerator<WalkedObject> {
    const visit = async function* (this: FilesystemDriver, dir: string, path: string): AsyncGenerator<WalkedObject> {
      let entries: Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (isNotFound(err) || isNotDirectory(err)) return;
        throw err;
      }
      for (const entry of entries) {
        if (path === "" && OWN_FILES.has(entry.name)) continue;
        const child = path === "" ? entry.name : `${path}/${entry.name}`;
        if (entry.isDirectory()) {
          yield* visit(join(dir, entry.name), child);
        } else if (entry.isFile()) {
          const info = await stat(join(dir, entry.name)).catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
          if (info) yield { path: child, size: info.size, modified: info.mtime };
        }
      }
    }.bind(this);
    yield* visit(prefix === "" ? this.root : this.file(prefix), prefix);
  }

  /** Gives the root's lease back. */
  async close(): Promise<void> {
    await this.lease?.release();
  }

  async probeWritable(): Promise<void> {
    await this.writeSmall("_probe", String(Date.now()));
  }

  async ensureSpace(bytes: number): Promise<void> {
    const info = await statfs(this.root);
    const free = info.bavail * info.bsize;
    if (free < bytes) throw Object.assign(new Error(`storage has ${free} bytes free, ${bytes} needed`), { code: "ENOSPC" });
  }

  /** Renames into place and fsyncs the directory so the rename survives a crash. */
  private async place(from: string, to: string): Promise<void> {
    const dir = dirname(to);
    await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
    await rename(from, to);
    const dirHandle = await open(dir, fsConstants.O_RDONLY);
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }
}

/** chmod, skipping what another user owns (EPERM). */
async function chmodOwn(path: string, mode: number): Promise<void> {
  await chmod(path, mode).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") throw err;
  });
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOENT";
}
function isNotDirectory(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOTDIR";
}
function isDirectory(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "EISDIR";
}
