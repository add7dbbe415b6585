import { performance } from "node:perf_hooks";
import { runCommand } from "../test/support/command.js";

/** One client's download, as curl measured it. */
export interface Download {
  /** Seconds from the start of the batch until this client had the last byte. */
  finishedAfter: number;
  bytes: number;
}

/** What a batch of concurrent downloads of one URL did. */
export interface DownloadBatch {
  downloads: Download[];
  /** Seconds until the last client finished. */
  wallSeconds: number;
  /** Every byte every client received, divided by the wall time, in MiB/s. */
  throughputMiBs: number;
}

/**
 * `clients` concurrent `curl` GETs of `url` into /dev/null. curl is the client for every
 * system measured, so its own cost (a copy out of the socket) is the same for all. Each
 * download must be a 200 of exactly `expectedBytes`.
 */
export async function downloadConcurrently(url: string, clients: number, expectedBytes: number): Promise<DownloadBatch> {
  const started = performance.now();
  const downloads = await Promise.all(
    Array.from({ length: clients }, async (): Promise<Download> => {
      const { stdout } = await runCommand("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url], { timeoutMs: 600_000 });
      const finishedAfter = (performance.now() - started) / 1000;
      const [status, bytes] = stdout.trim().split(" ").map(Number);
      if (status !== 200 || bytes !== expectedBytes) throw new Error(`GET ${url}: status ${status}, ${bytes} of ${expectedBytes} bytes`);
      return { finishedAfter, bytes };
    }),
  );
  const wallSeconds = Math.max(...downloads.map((d) => d.finishedAfter));
  const total = downloads.reduce((sum, d) => sum + d.bytes, 0);
  return { downloads, wallSeconds, throughputMiBs: total / MiB / wallSeconds };
}

export const MiB = 1024 * 1024;
