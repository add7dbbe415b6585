import type { SpoolFile } from "./spool.js";

/** How long a session's local copies stay unused before they are let go. */
const IDLE_MS = 10 * 60_000;

/** A tail object's path and, in records that carry it, the sha256 of its bytes. */
export interface TailRef {
  path: string;
  sha256?: string;
}

interface SessionCopies {
  used: number;
  /** Tail path → the local copy of the bytes this process wrote there. */
  copies: Map<string, { file: SpoolFile; sha256: string }>;
}

/**
 * Local copies of the tail objects this process wrote, so joining a tail to the next part
 * reads no S3. A copy stands in for a tail only when it holds the very bytes the session's
 * record names (same checksum). With replicas a session's next chunk may go to another
 * replica and never come back, so a session's copies unused for a while are let go (unless
 * one of its chunks is being received here), as are those its record no longer names.
 */
export class LocalTails {
  /** Least recently used first. */
  private readonly sessions = new Map<string, SessionCopies>();

  constructor(
    /** Whether a task of the session runs in this process now: its copies may be in use. */
    private readonly busy: (id: string) => boolean,
    private readonly idleMs = IDLE_MS,
  ) {}

  keep(id: string, tail: Required<TailRef>, file: SpoolFile): void {
    const session = this.touch(id);
    void session.copies.get(tail.path)?.file.release();
    session.copies.set(tail.path, { file, sha256: tail.sha256 });
    this.sweep();
  }

  /** The local file holding exactly the bytes of `tail`, if this process wrote them. */
  find(id: string, tail: TailRef): string | undefined {
    const copy = this.sessions.get(id)?.copies.get(tail.path);
    if (!copy || (tail.sha256 !== undefined && copy.sha256 !== tail.sha256)) return undefined;
    this.touch(id);
    return copy.file.path;
  }

  /** Lets go of the session's copies of tails other than `tails` (the session moved on elsewhere). */
  async retain(id: string, tails: readonly TailRef[]): Promise<void> {
    const session = this.sessions.get(id);
    if (!session) return;
    for (const [path, copy] of session.copies) {
      if (tails.some((tail) => tail.path === path && (tail.sha256 === undefined || tail.sha256 === copy.sha256))) continue;
      session.copies.delete(path);
      await copy.file.release();
    }
    if (session.copies.size === 0) this.sessions.delete(id);
  }

  async release(id: string, path: string): Promise<void> {
    const session = this.sessions.get(id);
    const copy = session?.copies.get(path);
    if (!session || !copy) return;
    session.copies.delete(path);
    if (session.copies.size === 0) this.sessions.delete(id);
    await copy.file.release();
  }

  async forget(id: string): Promise<void> {
    const session = this.sessions.get(id);
    this.sessions.delete(id);
    for (const copy of session?.copies.values() ?? []) await copy.file.release();
  }

  async close(): Promise<void> {
    for (const id of [...this.sessions.keys()]) await this.forget(id);
  }

  private touch(id: string): SessionCopies {
    const session = this.sessions.get(id) ?? { used: 0, copies: new Map() };
    session.used = Date.now();
    this.sessions.delete(id);
    this.sessions.set(id, session);
    return session;
  }

  private sweep(): void {
    const cutoff = Date.now() - this.idleMs;
    for (const [id, session] of this.sessions) {
      if (session.used > cutoff) break;
      if (!this.busy(id)) void this.forget(id);
    }
  }
}
