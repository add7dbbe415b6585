import { randomInt } from "node:crypto";
import { Agent, request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { ProcessSampler } from "./process-sampler.js";

/** One kind of pull, and what a correct answer to it is. */
export interface PullRequest {
  name: string;
  method: "GET" | "HEAD";
  path: string;
  headers?: Record<string, string>;
  /** The whole content this path serves (for HEAD: its length is checked against Content-Length). */
  content: Buffer;
  /** Ask for a random byte range of the content (206 expected). */
  ranged?: boolean;
}

export interface PullLoadOptions {
  /** Base URL of berth, `http://127.0.0.1:PORT`. */
  url: string;
  /** berth's process id, to sample its memory and descriptors. */
  pid: number;
  /** Connections kept open at once, each with one request in flight after another. */
  connections: number;
  durationMs: number;
  mix: PullRequest[];
}

export interface PullLoadReport {
  connections: number;
  durationMs: number;
  requests: number;
  failures: number;
  /** The first few failures, for the message of a failing test. */
  failureSamples: string[];
  requestsPerSecond: number;
  byKind: Record<string, number>;
  rssBeforeBytes: number;
  peakRssBytes: number;
  rssAfterBytes: number;
  fdsBefore: number;
  /** Most descriptors berth had open during the load: its sockets show the connections were really open at once. */
  peakFds: number;
  fdsAfter: number;
}

/**
 * Holds `connections` keep-alive connections to berth open at once, each pulling one request
 * of the mix after another (manifest HEAD/GET by tag and digest, blob GETs whole and ranged)
 * until the duration ends, and checks every answer byte for byte. Samples berth's VmRSS and
 * open descriptors from /proc meanwhile; after the load the connections are closed and the
 * descriptor count is read again once it has settled (at most 15 s).
 */
export async function runPullLoad(options: PullLoadOptions): Promise<PullLoadReport> {
  const sampler = new ProcessSampler(options.pid);
  const fdsBefore = await sampler.fds();
  const rssBefore = await sampler.rss();
  sampler.start(200);
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections, maxFreeSockets: options.connections });
  const report: PullLoadReport = {
    connections: options.connections,
    durationMs: options.durationMs,
    requests: 0,
    failures: 0,
    failureSamples: [],
    requestsPerSecond: 0,
    byKind: {},
    rssBeforeBytes: rssBefore,
    peakRssBytes: 0,
    rssAfterBytes: 0,
    fdsBefore,
    peakFds: 0,
    fdsAfter: 0,
  };
  const started = Date.now();
  const deadline = started + options.durationMs;
  const worker = async () => {
    while (Date.now() < deadline) {
      const pull = options.mix[randomInt(options.mix.length)];
      const problem = await pullOnce(options.url, agent, pull).catch((err: Error) => `${pull.name}: ${err.message}`);
      report.requests++;
      report.byKind[pull.name] = (report.byKind[pull.name] ?? 0) + 1;
      if (problem) {
        report.failures++;
        if (report.failureSamples.length < 10) report.failureSamples.push(problem);
      }
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  report.requestsPerSecond = Math.round(report.requests / ((Date.now() - started) / 1000));
  agent.destroy();
  await sampler.stop();
  report.peakRssBytes = sampler.peakRss;
  report.peakFds = sampler.peakFds;
  report.rssAfterBytes = await sampler.rss();
  for (const settle = Date.now() + 15_000; Date.now() < settle; await sleep(100)) {
    report.fdsAfter = await sampler.fds();
    if (report.fdsAfter <= fdsBefore) break;
  }
  return report;
}

/** One request; undefined when the answer is right, else what was wrong. */
function pullOnce(base: string, agent: Agent, pull: PullRequest): Promise<string | undefined> {
  const size = pull.content.length;
  const start = pull.ranged ? randomInt(size) : 0;
  const end = pull.ranged ? randomInt(start, size) : size - 1;
  const headers = { ...pull.headers, ...(pull.ranged ? { range: `bytes=${start}-${end}` } : {}) };
  return new Promise((resolve, reject) => {
    const req = request(`${base}${pull.path}`, { method: pull.method, agent, headers, timeout: 120_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const expectedStatus = pull.ranged ? 206 : 200;
        if (res.statusCode !== expectedStatus) return resolve(`${pull.name}: status ${res.statusCode}`);
        if (!res.complete) return resolve(`${pull.name}: body cut short`);
        const body = Buffer.concat(chunks);
        if (pull.method === "HEAD") {
          return resolve(Number(res.headers["content-length"]) === size ? undefined : `${pull.name}: Content-Length ${res.headers["content-length"]}`);
        }
        const expected = pull.ranged ? pull.content.subarray(start, end + 1) : pull.content;
        resolve(body.equals(expected) ? undefined : `${pull.name}: wrong body (${body.length} bytes, expected ${expected.length})`);
      });
    });
    req.on("timeout", () => req.destroy(new Error("no answer in 120 s")));
    req.on("error", reject);
    req.end();
  });
}
