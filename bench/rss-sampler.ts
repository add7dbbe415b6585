import { readFile } from "node:fs/promises";

const SAMPLE_EVERY_MS = 20;

/**
 * Samples a process's resident set (`VmRSS` in /proc/PID/status) while a phase runs. The
 * kernel's own high-water mark (`VmHWM`) would also count whatever the process did before
 * the phase (a 1 GiB push, say), so the peak is taken from samples instead.
 */
export class RssSampler {
  private peakKiB = 0;
  private readonly timer: NodeJS.Timeout;

  private constructor(private readonly pid: number) {
    this.timer = setInterval(() => void this.sample(), SAMPLE_EVERY_MS);
  }

  static start(pid: number): RssSampler {
    const sampler = new RssSampler(pid);
    void sampler.sample();
    return sampler;
  }

  /** Stops sampling; the highest resident set seen, in MiB. */
  async stop(): Promise<number> {
    clearInterval(this.timer);
    await this.sample();
    return this.peakKiB / 1024;
  }

  private async sample(): Promise<void> {
    const status = await readFile(`/proc/${this.pid}/status`, "utf8").catch(() => "");
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (match) this.peakKiB = Math.max(this.peakKiB, Number(match[1]));
  }
}
