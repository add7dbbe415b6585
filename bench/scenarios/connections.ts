import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { OriginRegistry } from "../../test/support/origin-registry.js";
import { runPullLoad } from "../../test/reliability/pull-load.js";
import { warmMirrorPulls } from "../../test/reliability/warm-mirror-load.js";
import { OpenResources } from "../open-resources.js";
import { QuietBerth } from "../quiet-berth.js";
import { RssSampler } from "../rss-sampler.js";
import { RSS_LIMIT_MiB, type Scenario } from "../scenario.js";

const MiB = 1024 * 1024;

/**
 * berth mirroring a warm image while `connections` keep-alive clients pull from it at once,
 * each one request after another (manifests by tag and digest, whole and ranged blobs of
 * 64 KiB and 1 MiB, HEADs), every answer checked; berth's resident set is sampled throughout.
 */
export const connections: Scenario = {
  name: "connections",
  description: "1,000 keep-alive connections pulling from a warm mirror: berth's peak RSS",
  async run({ sizes, progress }) {
    await ensureDescriptors(2 * sizes.connections + 1024);
    const open = new OpenResources();
    try {
      const origin = open.keep(await OriginRegistry.start());
      const berth = open.keep(await QuietBerth.start(origin));
      const mix = await warmMirrorPulls(origin, berth.url);
      await sleep(1000);
      progress(`${sizes.connections} connections for ${sizes.connectionSeconds} s`);
      const sampler = RssSampler.start(berth.pid);
      const report = await runPullLoad({ url: berth.url, pid: berth.pid, connections: sizes.connections, durationMs: sizes.connectionSeconds * 1000, mix });
      const peakMiB = await sampler.stop();
      await sleep(5000);
      const afterMiB = await residentMiB(berth.pid);
      // V8's memory reducer gives heap pages back once the process has been idle a while.
      await sleep(25_000);
      const idleMiB = await residentMiB(berth.pid);
      const phase = `${sizes.connections.toLocaleString("en-US")} keep-alive connections pulling for ${sizes.connectionSeconds} s`;
      return {
        tables: [
          {
            title: `${sizes.connections.toLocaleString("en-US")} keep-alive connections pulling from a warm mirror for ${sizes.connectionSeconds} s (berth, log.level warn)`,
            columns: ["requests", "requests/s", "failed", "RSS before MiB", "peak RSS MiB", "RSS 5 s after MiB", "RSS 30 s after MiB"],
            rows: [
              [
                String(report.requests),
                String(report.requestsPerSecond),
                String(report.failures),
                (report.rssBeforeBytes / MiB).toFixed(0),
                peakMiB.toFixed(0),
                afterMiB.toFixed(0),
                idleMiB.toFixed(0),
              ],
            ],
          },
        ],
        targets: [{ target: `berth peak RSS ≤ ${RSS_LIMIT_MiB} MiB (${phase})`, measured: `${peakMiB.toFixed(0)} MiB`, met: peakMiB <= RSS_LIMIT_MiB }],
        memory: [{ phase, process: "berth", peakMiB }],
      };
    } finally {
      await open.closeAll();
    }
  },
};

async function residentMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024;
}

/** Refuses to start when this process (and so berth, its child) may not open enough descriptors. */
async function ensureDescriptors(needed: number): Promise<void> {
  const limits = await readFile("/proc/self/limits", "utf8");
  const soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? Infinity);
  if (soft < needed) throw new Error(`open files limit is ${soft}, ${needed} needed: raise it (ulimit -n ${needed}) and run again`);
}
