import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCommand } from "../test/support/command.js";

export interface LoadOptions {
  method: "GET" | "HEAD";
  headers: Record<string, string>;
  connections: number;
  durationSeconds: number;
  /** Where the load generator's script or percentile file goes. */
  scratchDir: string;
  /** wrk only: a request taking longer counts as a timeout, not as a latency (wrk's default: 2 s). */
  timeoutSeconds?: number;
}

/** What one run of a load generator measured. */
export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Failed or non-2xx/3xx responses and socket errors: a run with any is not a fair number. */
  errors: number;
}

/**
 * Keeps `connections` keep-alive connections busy with one request for a while. GET goes
 * through wrk. wrk cannot do HEAD (it waits for the body a HEAD response's Content-Length
 * announces: wg/wrk#198), so HEAD goes through ApacheBench (`ab -k -i`), which knows better.
 */
export function measureLoad(url: string, options: LoadOptions): Promise<LoadResult> {
  return options.method === "HEAD" ? runAbHead(url, options) : runWrk(url, options);
}

const unique = () => `${Date.now()}-${Math.random().toString(36).slice(2)}`;

async function runWrk(url: string, options: LoadOptions): Promise<LoadResult> {
  const script = join(options.scratchDir, `wrk-${unique()}.lua`);
  const lines = [`wrk.method = ${JSON.stringify(options.method)}`, ...Object.entries(options.headers).map(([name, value]) => `wrk.headers[${JSON.stringify(name)}] = ${JSON.stringify(value)}`)];
  await writeFile(script, `${lines.join("\n")}\n`);
  const threads = Math.min(2, options.connections);
  const args = ["-t", String(threads), "-c", String(options.connections), "-d", `${options.durationSeconds}s`, "--latency", "-s", script, url];
  if (options.timeoutSeconds !== undefined) args.push("--timeout", `${options.timeoutSeconds}s`);
  const { stdout } = await runCommand("wrk", args, { timeoutMs: (options.durationSeconds + 60) * 1000 });
  return parseWrkOutput(stdout);
}

function parseWrkOutput(output: string): LoadResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(output);
  const p50 = /^\s+50%\s+([\d.]+)(us|ms|s)\b/m.exec(output);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)\b/m.exec(output);
  if (!rps || !p50 || !p99) throw new Error(`unexpected wrk output:\n${output}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(output);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  return {
    requestsPerSecond: Number(rps[1]),
    p50Ms: milliseconds(p50[1], p50[2]),
    p99Ms: milliseconds(p99[1], p99[2]),
    errors: Number(non2xx?.[1] ?? 0) + socketErrors,
  };
}

function milliseconds(value: string, unit: string): number {
  const scale = unit === "us" ? 0.001 : unit === "s" ? 1000 : 1;
  return Number(value) * scale;
}

/** ab stops at the time limit; the request cap only sizes its statistics array. */
const AB_REQUEST_CAP = 2_000_000;

async function runAbHead(url: string, options: LoadOptions): Promise<LoadResult> {
  const percentiles = join(options.scratchDir, `ab-${unique()}.csv`);
  const args = ["-k", "-i", "-q", "-c", String(options.connections), "-t", String(options.durationSeconds), "-n", String(AB_REQUEST_CAP), "-e", percentiles];
  for (const [name, value] of Object.entries(options.headers)) args.push("-H", `${name}: ${value}`);
  const { stdout } = await runCommand("ab", [...args, url], { timeoutMs: (options.durationSeconds + 60) * 1000 });
  const rps = /^Requests per second:\s+([\d.]+)/m.exec(stdout);
  if (!rps) throw new Error(`unexpected ab output:\n${stdout}`);
  const table = await readFile(percentiles, "utf8");
  const percentile = (p: number) => Number(new RegExp(`^${p},([\\d.]+)`, "m").exec(table)?.[1] ?? NaN);
  const count = (label: string) => Number(new RegExp(`^${label}:\\s+(\\d+)`, "m").exec(stdout)?.[1] ?? 0);
  return {
    requestsPerSecond: Number(rps[1]),
    p50Ms: percentile(50),
    p99Ms: percentile(99),
    errors: count("Failed requests") + count("Non-2xx responses"),
  };
}
