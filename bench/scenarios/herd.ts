import { stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { AccessLogEntry } from "../../test/support/access-log.js";
import { OriginRegistry } from "../../test/support/origin-registry.js";
import { downloadConcurrently, MiB } from "../curl-download.js";
import { buildBenchImage, pushImage } from "../images.js";
import { NginxStatic } from "../nginx-static.js";
import { OpenResources } from "../open-resources.js";
import { MIRROR_PREFIX, QuietBerth } from "../quiet-berth.js";
import { ratio } from "../report.js";
import { RssSampler } from "../rss-sampler.js";
import { RSS_LIMIT_MiB, type MemoryReading, type Scenario, type TargetCheck } from "../scenario.js";

/** A cache in front of the origin, started empty. */
interface Cache {
  blobUrl: string;
  /** Where the cache keeps the blob once it has stored it. */
  storedBlob: string;
  pid: number;
  close(): Promise<void>;
}

/** What one batch of cold GETs cost the origin and the clients. */
interface HerdRun {
  originGets: number;
  originBytes: number;
  lastClientSeconds: number;
  peakRssMiB: number;
}

/** Many clients asking an empty cache for the same large blob at once: how often does the origin serve it? */
export const herd: Scenario = {
  name: "herd",
  description: "concurrent cold GETs of one blob: origin bytes and last-client time, berth vs Distribution's proxy",
  async run({ sizes, workDir, progress }) {
    const open = new OpenResources();
    try {
      const image = await buildBenchImage(join(workDir, "layout"), "herd", [sizes.herdBlob]);
      const { digest, size } = image.manifests[0].layers[0];
      const origin = open.keep(await OriginRegistry.start());
      await pushImage(image, `${origin.host}/bench/herd:v1`);
      const blobPath = `/v2/bench/herd/blobs/${digest}`;
      const hex = digest.slice("sha256:".length);

      const caches: { name: string; start(): Promise<Cache> }[] = [
        {
          name: "berth",
          start: async () => {
            const berth = await QuietBerth.start(origin);
            return {
              blobUrl: `${berth.url}/v2/${MIRROR_PREFIX}/bench/herd/blobs/${digest}`,
              storedBlob: join(berth.storageDir, "blobs", "sha256", hex.slice(0, 2), hex),
              pid: berth.pid,
              close: () => berth.close(),
            };
          },
        },
        {
          name: "Distribution proxy",
          start: async () => {
            const proxy = await OriginRegistry.start({ proxy: { remoteUrl: origin.url } });
            return {
              blobUrl: `${proxy.url}${blobPath}`,
              storedBlob: join(proxy.storageDir, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data"),
              pid: proxy.pid,
              close: () => proxy.close(),
            };
          },
        },
      ];
      const measure = async (cache: (typeof caches)[number], clients: number): Promise<HerdRun> => {
        progress(`${clients} cold client(s): ${cache.name}`);
        const started = open.keep(await cache.start());
        try {
          const logged = (await origin.accessLog()).length;
          const sampler = RssSampler.start(started.pid);
          const batch = await downloadConcurrently(started.blobUrl, clients, size);
          const peakRssMiB = await sampler.stop();
          await untilStored(started.storedBlob, size);
          const fetches = (await settledAccessLog(origin)).slice(logged).filter((e) => e.method === "GET" && e.path === blobPath);
          return { originGets: fetches.length, originBytes: fetches.reduce((sum, e) => sum + e.bytes, 0), lastClientSeconds: batch.wallSeconds, peakRssMiB };
        } finally {
          await open.close(started);
        }
      };

      // The floor: the same bytes sent to the same crowd by nginx, from a warm file.
      const nginx = open.keep(await NginxStatic.start(join(workDir, "layout", "blobs", "sha256")));
      progress(`${sizes.herdClients} warm clients: nginx`);
      const floor = await downloadConcurrently(`${nginx.url}/${hex}`, sizes.herdClients, size);
      await open.close(nginx);

      const rows: string[][] = [];
      const targets: TargetCheck[] = [];
      const memory: MemoryReading[] = [];
      for (const cache of caches) {
        const lone = await measure(cache, 1);
        const crowd = await measure(cache, sizes.herdClients);
        rows.push([
          cache.name,
          String(crowd.originGets),
          (crowd.originBytes / MiB).toFixed(0),
          ratio(crowd.originBytes, size),
          crowd.lastClientSeconds.toFixed(2),
          lone.lastClientSeconds.toFixed(2),
          ratio(crowd.lastClientSeconds, lone.lastClientSeconds),
          floor.wallSeconds.toFixed(2),
        ]);
        memory.push({ phase: `herd: ${sizes.herdClients} cold GETs of ${size / MiB} MiB`, process: cache.name, peakMiB: crowd.peakRssMiB });
        if (cache.name === "berth") {
          targets.push(
            { target: "herd: origin bytes = 1.0 × blob size through berth", measured: ratio(crowd.originBytes, size), met: crowd.originBytes === size },
            { target: "herd: last client ≤ 1.2 × one lone cold pull", measured: ratio(crowd.lastClientSeconds, lone.lastClientSeconds), met: crowd.lastClientSeconds <= 1.2 * lone.lastClientSeconds },
            { target: `berth peak RSS ≤ ${RSS_LIMIT_MiB} MiB (herd)`, measured: `${crowd.peakRssMiB.toFixed(0)} MiB`, met: crowd.peakRssMiB <= RSS_LIMIT_MiB },
          );
        }
      }
      return {
        tables: [
          {
            title: `Thundering herd: ${sizes.herdClients} concurrent cold GETs of one ${size / MiB} MiB blob`,
            columns: ["cache", "origin GETs", "origin MiB", "÷ blob size", "last client s", "lone cold GET s", "last ÷ lone", "floor: nginx, warm, s"],
            rows,
          },
        ],
        targets,
        memory,
      };
    } finally {
      await open.closeAll();
    }
  },
};

/** Distribution's proxy stores a blob with a fetch of its own that may outlast its clients' downloads. */
async function untilStored(path: string, size: number): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if ((await stat(path).catch(() => undefined))?.size === size) return;
    await sleep(100);
  }
  throw new Error(`the cache never stored the blob at ${path}`);
}

/** The origin's access log once a request that just ended has had time to be logged. */
async function settledAccessLog(origin: OriginRegistry): Promise<AccessLogEntry[]> {
  let entries = await origin.accessLog();
  for (let attempt = 0; attempt < 20; attempt++) {
    await sleep(250);
    const again = await origin.accessLog();
    if (again.length === entries.length) return again;
    entries = again;
  }
  return entries;
}
