/** Refused by a BoundedWork already running and holding as many tasks as it takes. */
export class WorkRefused extends Error {}

/**
 * Runs at most `concurrency` tasks at once and lets at most `queue` more wait their turn; any
 * further task is refused at once, so a flood costs a rejection each, not a wait that grows.
 */
export class BoundedWork {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly concurrency: number,
    readonly queue: number,
  ) {}

  /** Tasks running now. */
  get running(): number {
    return this.active;
  }

  /** Tasks waiting for one of the running ones to end. */
  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.concurrency) this.active++;
    else if (this.waiting.length < this.queue) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else throw new WorkRefused(`${this.active} tasks running and ${this.waiting.length} waiting`);
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiting task: `active` never drops and rises again.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
