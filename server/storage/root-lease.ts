import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { open, readFile, rm, stat, utimes } from "node:fs/promises";

export const LEASE_FILE = "_lease";
/** How often the holder renews its lease (touches the file). */
const RENEW_MS = 5_000;
/** A lease not renewed for this long, by a process on another host, is taken over. */
const STALE_MS = 30_000;

/** Raised when another live process holds the storage root. */
export class RootLeasedError extends Error {
  constructor(
    readonly root: string,
    readonly holder: string,
  ) {
    super(`storage root ${root} is in use by another berth (${holder}); one process owns a root`);
  }
}

interface LeaseRecord {
  owner: string;
  host: string;
  pid: number;
  since: string;
}

/**
 * One process owns a storage root: it clears the root's temp files at start, which would
 * destroy another process's writes in flight. The lease is a file naming its holder, renewed
 * every few seconds. A lease is free when its holder on this host has exited (or is this very
 * process, restarted in the same container), or when a holder elsewhere stopped renewing it.
 */
export class RootLease {
  private timer?: NodeJS.Timeout;
  private lost = false;

  private constructor(
    private readonly file: string,
    private readonly owner: string,
  ) {}

  static async acquire(root: string): Promise<RootLease> {
    const file = join(root, LEASE_FILE);
    const record: LeaseRecord = { owner: randomUUID(), host: hostname(), pid: process.pid, since: new Date().toISOString() };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const handle = await open(file, "wx", 0o600);
        try {
          await handle.writeFile(JSON.stringify(record));
          await handle.sync();
        } finally {
          await handle.close();
        }
        const lease = new RootLease(file, record.owner);
        lease.timer = setInterval(() => void lease.renew(), RENEW_MS).unref();
        return lease;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const holder = await readHolder(file);
      if (holder && !(await isFree(file, holder))) throw new RootLeasedError(root, `pid ${holder.pid} on ${holder.host}, since ${holder.since}`);
      await rm(file, { force: true });
    }
    throw new RootLeasedError(root, "a process racing for it");
  }

  /** False once another process took the lease over (this one stopped renewing in time). */
  get held(): boolean {
    return !this.lost;
  }

  private async renew(): Promise<void> {
    const holder = await readHolder(this.file);
    if (holder?.owner !== this.owner) {
      this.lost = true;
      clearInterval(this.timer);
      return;
    }
    const now = new Date();
    await utimes(this.file, now, now).catch(() => {});
  }

  async release(): Promise<void> {
    clearInterval(this.timer);
    if (this.lost) return;
    const holder = await readHolder(this.file);
    if (holder?.owner === this.owner) await rm(this.file, { force: true });
  }
}

async function readHolder(file: string): Promise<LeaseRecord | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as LeaseRecord;
  } catch {
    return undefined; // absent, or torn by a crash while it was written: free
  }
}

async function isFree(file: string, holder: LeaseRecord): Promise<boolean> {
  if (holder.host === hostname()) return holder.pid === process.pid || !isAlive(holder.pid);
  const info = await stat(file).catch(() => undefined);
  return !info || Date.now() - info.mtimeMs > STALE_MS;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
