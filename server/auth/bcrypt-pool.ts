import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { BoundedWork, WorkRefused } from "../concurrency/bounded-work.js";
import type { PasswordHasher } from "./accounts.js";

export type BcryptJob = { password: string; hash: string } | { password: string; cost: number };
export type BcryptReply = { ok: true; value: boolean | string } | { ok: false; message: string };

/** Every thread is busy and the queue is full: the check was not made; try again shortly. */
export class PasswordChecksBusy extends Error {}

export interface BcryptPoolOptions {
  /** bcrypt runs at most this many at once, each on a worker thread of its own. */
  threads: number;
  /** Jobs waiting for a thread; one more is refused with PasswordChecksBusy. */
  queue: number;
}

const WORKER_FILE = join(__dirname, "bcrypt-worker.js");

/**
 * bcrypt (bcryptjs: pure JavaScript, nothing to build) on worker threads: a password check
 * never runs on the event loop that serves pulls, and a flood of them is bounded by
 * `threads` running and `queue` waiting instead of starving everything else.
 */
export class BcryptPool implements PasswordHasher {
  private readonly work: BoundedWork;
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();

  constructor(options: BcryptPoolOptions) {
    this.work = new BoundedWork(options.threads, options.queue);
  }

  /** bcrypt jobs running now: never more than `threads`. */
  get running(): number {
    return this.work.running;
  }

  async compare(password: string, hash: string): Promise<boolean> {
    return (await this.submit({ password, hash })) as boolean;
  }

  async hash(password: string, cost: number): Promise<string> {
    return (await this.submit({ password, cost })) as string;
  }

  /** Ends every thread; jobs in flight fail. */
  async close(): Promise<void> {
    await Promise.all([...this.all].map((worker) => worker.terminate()));
  }

  private async submit(job: BcryptJob): Promise<boolean | string> {
    try {
      return await this.work.run(() => this.onThread(job));
    } catch (err) {
      if (err instanceof WorkRefused) throw new PasswordChecksBusy(`password checks are all busy: ${err.message}`);
      throw err;
    }
  }

  /** BoundedWork runs at most `threads` of these at once, so an idle thread exists or may be started. */
  private async onThread(job: BcryptJob): Promise<boolean | string> {
    const worker = this.idle.pop() ?? this.start();
    worker.ref();
    const reply = await new Promise<BcryptReply>((resolve, reject) => {
      const settle = (done: () => void) => {
        worker.off("message", onMessage).off("error", onError).off("exit", onExit);
        done();
      };
      const onMessage = (message: BcryptReply) => settle(() => resolve(message));
      const onError = (err: Error) => settle(() => reject(err));
      const onExit = (code: number) => settle(() => reject(new Error(`bcrypt thread exited (code ${code})`)));
      worker.on("message", onMessage).on("error", onError).on("exit", onExit);
      worker.postMessage(job);
    }).catch((err: unknown) => {
      this.all.delete(worker);
      void worker.terminate();
      throw err;
    });
    // An idle thread must not keep the process alive.
    worker.unref();
    this.idle.push(worker);
    if (!reply.ok) throw new Error(`bcrypt: ${reply.message}`);
    return reply.value;
  }

  private start(): Worker {
    const worker = new Worker(WORKER_FILE);
    this.all.add(worker);
    // A thread that dies while idle is only dropped (a busy one's job fails through onThread's listeners).
    worker.on("error", () => {});
    worker.on("exit", () => {
      this.all.delete(worker);
      const index = this.idle.indexOf(worker);
      if (index >= 0) this.idle.splice(index, 1);
    });
    return worker;
  }
}
