import { Readable } from "node:stream";
import { ChunkWindow } from "./chunk-window.js";
import { PeerGoneError } from "./fill-peers.js";

/** Bytes of the shared transfer kept in memory for the readers following it. */
const WINDOW_BYTES = 16 * 1024 * 1024;
/** Longest the shared transfer waits for its slowest reader before it leaves that reader behind. */
const SLOWEST_WAIT_MS = 1_000;

/** A reader's position has left the shared transfer's window: it reads a transfer of its own instead. */
export class LeftBehindError extends Error {}

/**
 * One transfer of a whole blob from the replica leading its fill, shared by this replica's
 * readers: the leader sends the blob once per following replica, not once per client. The
 * transfer waits (a little) for its slowest reader; a reader whose position is no longer in
 * memory (it came late, asked for an earlier Range, or fell behind) gets LeftBehindError and
 * opens a transfer of its own from where it is.
 */
export class PeerRelay {
  private readonly window = new ChunkWindow(WINDOW_BYTES);
  private failure?: Error;
  private done = false;
  private readonly positions = new Set<{ at: number }>();
  /** Fired when bytes arrive or the transfer ends. */
  private arrived = new Signal();
  /** Fired when a reader moves on or leaves. */
  private advanced = new Signal();
  private readonly aborter = new AbortController();

  constructor(
    open: (signal: AbortSignal) => Promise<Readable>,
    private readonly size: number,
    signal: AbortSignal,
  ) {
    void this.run(open, AbortSignal.any([signal, this.aborter.signal]));
  }

  /** Failed or done: no new reader can start here. */
  get over(): boolean {
    return this.failure !== undefined || this.done;
  }

  /** Stops the transfer: nobody here reads the blob any more. */
  abort(): void {
    this.aborter.abort(new Error("no reader left"));
  }

  /** Bytes [start, end] as the shared transfer delivers them; undefined when `start` is no longer in memory. */
  open(start: number, end: number): Readable | undefined {
    if (this.failure || start < this.window.start) return undefined;
    const position = { at: start };
    this.positions.add(position);
    const next = async (): Promise<Buffer | null> => {
      for (;;) {
        if (position.at > end) return null;
        if (position.at < this.window.start) throw new LeftBehindError(`byte ${position.at} has left the shared transfer's window`);
        if (position.at < this.window.end) {
          const chunk = this.window.view(position.at, end + 1);
          position.at += chunk.length;
          this.advanced = fire(this.advanced);
          return chunk;
        }
        if (this.failure) throw this.failure;
        if (this.done) throw new PeerGoneError(`the shared transfer ended at byte ${this.window.end}, before byte ${end}`);
        await this.arrived.next;
      }
    };
    const stream: Readable = new Readable({
      read: () => {
        next().then(
          (chunk) => stream.push(chunk),
          (err: Error) => stream.destroy(err),
        );
      },
      destroy: (err, callback) => {
        this.positions.delete(position);
        this.advanced = fire(this.advanced);
        callback(err);
      },
    });
    return stream;
  }

  private async run(open: (signal: AbortSignal) => Promise<Readable>, signal: AbortSignal): Promise<void> {
    try {
      const body = await open(signal);
      for await (const chunk of body as AsyncIterable<Buffer>) {
        await this.slowestCatchesUp();
        this.window.append(chunk);
        this.window.trim(this.window.end);
        this.arrived = fire(this.arrived);
      }
      if (this.window.end !== this.size) throw new PeerGoneError(`the shared transfer ended at byte ${this.window.end} of ${this.size}`);
      this.done = true;
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
    }
    this.arrived = fire(this.arrived);
  }

  /** Waits while the slowest reader is a window behind, but no longer than SLOWEST_WAIT_MS. */
  private async slowestCatchesUp(): Promise<void> {
    const deadline = performance.now() + SLOWEST_WAIT_MS;
    for (;;) {
      const slowest = Math.min(...[...this.positions].map((p) => p.at));
      const left = deadline - performance.now();
      if (this.window.end - slowest < WINDOW_BYTES || left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.advanced.next, new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
    }
  }
}

/** Wakes the waiters of `signal`; returns the signal to wait on next. */
function fire(signal: Signal): Signal {
  signal.fire();
  return new Signal();
}

/** A one-shot wake-up that any number of waiters can await. */
class Signal {
  readonly next: Promise<void>;
  fire!: () => void;

  constructor() {
    this.next = new Promise((resolve) => (this.fire = resolve));
  }
}
