import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { OriginRegistry } from "../../test/support/origin-registry.js";
import { Replicas } from "../../test/support/replicas.js";
import { downloadConcurrently, MiB } from "../curl-download.js";
import { buildBenchImage, pushImage } from "../images.js";
import { LinkLimiter } from "../link-limiter.js";
import { MIRROR_PREFIX } from "../quiet-berth.js";
import { ratio } from "../report.js";
import type { Scenario, TargetCheck } from "../scenario.js";

/** What one batch of cold GETs spread over the replicas cost the origin and the clients. */
interface HerdRun {
  originGets: number;
  lastClientSeconds: number;
  /** CPU time the replicas spent, all three together: on a loaded machine steadier than the wall time. */
  replicaCpuSeconds: number;
}

/** CPU time (user + system) a process has used so far, from /proc/PID/stat. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Linux's USER_HZ. */
const CLOCK_TICKS = 100;

/**
 * The herd again, on a cluster tier: clients spread over 3 berth replicas (one bucket on Swift's
 * s3api, one Redis) ask for one cold blob at once, the origin behind a WAN link. One replica
 * fetches, the others stream from it; with Redis stopped each replica fetches on its own.
 */
export const replicasHerd: Scenario = {
  name: "replicas-herd",
  description: "concurrent cold GETs of one blob spread over 3 replicas behind a slow link: origin GETs, last client vs a lone pull, Redis stopped",
  async run({ sizes, workDir, progress }) {
    const size = sizes.linkHerdBlob;
    const image = await buildBenchImage(join(workDir, "layout"), "replicas-herd", [size, size, size]);
    const [loneBlob, crowdBlob, unsharedBlob] = image.manifests[0].layers;
    const origin = await OriginRegistry.start();
    let link: LinkLimiter | undefined;
    let replicas: Replicas | undefined;
    try {
      await pushImage(image, `${origin.host}/bench/replicas:v1`);
      link = await LinkLimiter.start(origin, sizes.linkBytesPerSecond);
      progress("starting 3 replicas on Swift's s3api and Redis");
      replicas = await Replicas.start({
        count: 3,
        config: { upstreams: [{ host: origin.host, url: link.url, prefix: MIRROR_PREFIX }], cache: { collectInterval: 0 } },
        env: { BERTH_LOG_LEVEL: "warn" },
      });
      const cluster = replicas;

      const measure = async (digest: string, clients: number): Promise<HerdRun> => {
        const path = `/v2/${MIRROR_PREFIX}/bench/replicas/blobs/${digest}`;
        const spread = cluster.urls.map((url, i) => ({ url, clients: Math.floor(clients / cluster.urls.length) + (i < clients % cluster.urls.length ? 1 : 0) })).filter((s) => s.clients > 0);
        const cpu = () => Promise.all(cluster.members.map((member) => cpuSeconds(member.pid))).then((all) => all.reduce((sum, s) => sum + s, 0));
        const cpuBefore = await cpu();
        const batches = await Promise.all(spread.map((s) => downloadConcurrently(`${s.url}${path}`, s.clients, size)));
        // The fill's owner may still be storing the blob after its clients are done.
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const replicaCpuSeconds = (await cpu()) - cpuBefore;
        return { originGets: await origin.count("GET", `/v2/bench/replicas/blobs/${digest}`), lastClientSeconds: Math.max(...batches.map((b) => b.wallSeconds)), replicaCpuSeconds };
      };

      progress(`1 cold client of ${size / MiB} MiB`);
      const lone = await measure(loneBlob.digest, 1);
      progress(`${sizes.herdClients} cold clients over 3 replicas`);
      const crowd = await measure(crowdBlob.digest, sizes.herdClients);
      progress(`${sizes.herdClients} cold clients over 3 replicas, Redis stopped`);
      await replicas.redis.stop();
      const unshared = await measure(unsharedBlob.digest, sizes.herdClients);
      await replicas.redis.restart();

      const targets: TargetCheck[] = [
        { target: `herd over 3 replicas behind a ${sizes.linkBytesPerSecond / MiB} MiB/s link: origin GETs = 1`, measured: String(crowd.originGets), met: crowd.originGets === 1 },
        { target: "herd over 3 replicas: last client ≤ 1.2 × a lone pull", measured: ratio(crowd.lastClientSeconds, lone.lastClientSeconds), met: crowd.lastClientSeconds <= 1.2 * lone.lastClientSeconds },
        { target: "Redis stopped: herd over 3 replicas ≤ 3 origin GETs", measured: String(unshared.originGets), met: unshared.originGets <= 3 },
      ];
      return {
        tables: [
          {
            title: `Herd over 3 replicas behind a ${sizes.linkBytesPerSecond / MiB} MiB/s link: ${sizes.herdClients} concurrent cold GETs of one ${size / MiB} MiB blob, spread round robin`,
            columns: ["run", "origin GETs", "last client s", "lone cold GET s", "last ÷ lone", "replicas' CPU s", "lone's CPU s"],
            rows: [
              ["Redis up (one fill for the cluster)", String(crowd.originGets), crowd.lastClientSeconds.toFixed(2), lone.lastClientSeconds.toFixed(2), ratio(crowd.lastClientSeconds, lone.lastClientSeconds), crowd.replicaCpuSeconds.toFixed(1), lone.replicaCpuSeconds.toFixed(1)],
              ["Redis stopped (a fill per replica)", String(unshared.originGets), unshared.lastClientSeconds.toFixed(2), lone.lastClientSeconds.toFixed(2), ratio(unshared.lastClientSeconds, lone.lastClientSeconds), unshared.replicaCpuSeconds.toFixed(1), lone.replicaCpuSeconds.toFixed(1)],
            ],
          },
        ],
        targets,
        memory: [],
      };
    } finally {
      await replicas?.close();
      await link?.close();
      await origin.close();
    }
  },
};
