import { readdir, readFile } from "node:fs/promises";

/** Reads a process's resident memory (VmRSS) and open descriptors from /proc, once or every few milliseconds, keeping the peaks. */
export class ProcessSampler {
  peakRss = 0;
  peakFds = 0;
  private timer?: NodeJS.Timeout;
  private sampling = Promise.resolve();

  constructor(readonly pid: number) {}

  /** VmRSS in bytes. */
  async rss(): Promise<number> {
    const status = await readFile(`/proc/${this.pid}/status`, "utf8");
    const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    if (!kib) throw new Error(`no VmRSS for process ${this.pid}`);
    return Number(kib[1]) * 1024;
  }

  /** Open file descriptors (files, sockets, pipes). */
  async fds(): Promise<number> {
    return (await readdir(`/proc/${this.pid}/fd`)).length;
  }

  start(everyMs: number): void {
    this.timer = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample()).catch(() => {});
    }, everyMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.sampling;
    await this.sample();
  }

  private async sample(): Promise<void> {
    const [rss, fds] = await Promise.all([this.rss(), this.fds()]);
    this.peakRss = Math.max(this.peakRss, rss);
    this.peakFds = Math.max(this.peakFds, fds);
  }
}
