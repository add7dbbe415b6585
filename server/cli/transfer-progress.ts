import { MultiBar, Presets, type SingleBar } from "cli-progress";
import { formatBytes } from "../human-readable.js";

/** One blob transfer as the user watches it. */
export interface TransferTracker {
  advance(bytes: number): void;
  /** The transfer is complete; `cached` when berth already held the blob. */
  done(cached: boolean): void;
  failed(reason: string): void;
}

/** Blob transfers shown on stderr: a bar per blob on a terminal, a line per finished blob otherwise. */
export interface TransferProgress {
  start(label: string, size: number): TransferTracker;
  /** Ends the display (a terminal's bars); starting another transfer brings it back. */
  stop(): void;
}

export function transferProgressOn(stream: NodeJS.WriteStream): TransferProgress {
  return stream.isTTY ? new BarProgress(stream) : new LineProgress(stream);
}

const outcome = (label: string, size: number, cached: boolean) => `${label}  ${formatBytes(size).padStart(10)}  ${cached ? "cached" : "fetched"}`;

class LineProgress implements TransferProgress {
  constructor(private readonly stream: NodeJS.WritableStream) {}

  start(label: string, size: number): TransferTracker {
    return {
      advance: () => undefined,
      done: (cached) => this.stream.write(`${outcome(label, size, cached)}\n`),
      failed: (reason) => this.stream.write(`${label}  failed: ${reason}\n`),
    };
  }

  stop(): void {}
}

/** Finished transfers leave their bar and become a line above the bars still running. */
class BarProgress implements TransferProgress {
  private readonly bars: MultiBar;

  constructor(stream: NodeJS.WriteStream) {
    this.bars = new MultiBar(
      { stream, format: "{label} |{bar}| {percentage}% {transferred}/{size}", hideCursor: true, clearOnComplete: false, autopadding: true, barsize: 30 },
      Presets.shades_classic,
    );
  }

  start(label: string, size: number): TransferTracker {
    const bar: SingleBar = this.bars.create(Math.max(size, 1), 0, { label, transferred: formatBytes(0), size: formatBytes(size) });
    let transferred = 0;
    const finish = (line: string) => {
      // Logged first: removing the bar redraws, which writes pending log lines above the bars.
      this.bars.log(`${line}\n`);
      this.bars.remove(bar);
    };
    return {
      advance: (bytes) => {
        transferred += bytes;
        bar.update(Math.min(transferred, Math.max(size, 1)), { transferred: formatBytes(transferred) });
      },
      done: (cached) => finish(outcome(label, size, cached)),
      failed: (reason) => finish(`${label}  failed: ${reason}`),
    };
  }

  stop(): void {
    if (!this.bars.isActive) return;
    this.bars.update();
    this.bars.stop();
  }
}
