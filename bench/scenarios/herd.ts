import { stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { OriginRegistry } from "../../test/support/origin-registry.js";
import { downloadConcurrently, MiB } from "../curl-download.js";
import { buildBenchImage, pushImage } from "../images.js";
import { LinkLimiter } from "../link-limiter.js";
import { Nginx } from "../nginx.js";
import { OpenResources } from "../open-resources.js";
import { settledAccessLog } from "../origin-traffic.js";
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

/** An upstream as a cache sees it: the origin itself, or the origin behind a slower link. */
interface Upstream {
  host: string;
  url: string;
}

/** The blob every client of a herd asks for. */
interface HerdBlob {
  digest: string;
  size: number;
}

/** A cache in front of `upstream`, started empty, ready to serve `blob`. */
function startCache(name: "berth" | "Distribution proxy", upstream: Upstream, blob: HerdBlob): Promise<Cache> {
  const hex = blob.digest.slice("sha256:".length);
  return name === "berth"
    ? QuietBerth.start(upstream).then((berth) => ({
        blobUrl: `${berth.url}/v2/${MIRROR_PREFIX}/bench/herd/blobs/${blob.digest}`,
        storedBlob: join(berth.storageDir, "blobs", "sha256", hex.slice(0, 2), hex),
        pid: berth.pid,
        close: () => berth.close(),
      }))
    : OriginRegistry.start({ proxy: { remoteUrl: upstream.url } }).then((proxy) => ({
        blobUrl: `${proxy.url}/v2/bench/herd/blobs/${blob.digest}`,
        storedBlob: join(proxy.storageDir, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data"),
        pid: proxy.pid,
        close: () => proxy.close(),
      }));
}

const CACHES = ["berth", "Distribution proxy"] as const;

/**
 * Many clients asking an empty cache for the same large blob at once: how often does the
 * origin serve it, and how long does the last client wait? First with the origin on loopback,
 * where it answers as fast as the machine copies, then behind a link of WAN bandwidth, as a
 * mirror's upstream usually is.
 */
export const herd: Scenario = {
  name: "herd",
  description: "concurrent cold GETs of one blob: origin bytes and last-client time, berth vs Distribution's proxy",
  async run({ sizes, workDir, progress }) {
    const open = new OpenResources();
    try {
      const image = await buildBenchImage(join(workDir, "layout"), "herd", [sizes.herdBlob, sizes.linkHerdBlob]);
      const [blob, linkBlob] = image.manifests[0].layers;
      const origin = open.keep(await OriginRegistry.start());
      await pushImage(image, `${origin.host}/bench/herd:v1`);

      const measure = async (name: (typeof CACHES)[number], upstream: Upstream, target: HerdBlob, clients: number): Promise<HerdRun> => {
        progress(`${clients} cold client(s): ${name}${upstream === origin ? "" : " behind the link"}`);
        const started = open.keep(await startCache(name, upstream, target));
        try {
          const logged = (await origin.accessLog()).length;
          const sampler = RssSampler.start(started.pid);
          const batch = await downloadConcurrently(started.blobUrl, clients, target.size);
          const peakRssMiB = await sampler.stop();
          await untilStored(started.storedBlob, target.size);
          const blobPath = `/v2/bench/herd/blobs/${target.digest}`;
          const fetches = (await settledAccessLog(origin)).slice(logged).filter((e) => e.method === "GET" && e.path === blobPath);
          return { originGets: fetches.length, originBytes: fetches.reduce((sum, e) => sum + e.bytes, 0), lastClientSeconds: batch.wallSeconds, peakRssMiB };
        } finally {
          await open.close(started);
        }
      };

      // The floor: the same bytes sent to the same crowd by nginx, from a warm file.
      const nginx = open.keep(await Nginx.serving(join(workDir, "layout", "blobs", "sha256")));
      progress(`${sizes.herdClients} warm clients: nginx`);
      const floor = await downloadConcurrently(`${nginx.url}/${blob.digest.slice("sha256:".length)}`, sizes.herdClients, blob.size);
      await open.close(nginx);

      const rows: string[][] = [];
      const linkRows: string[][] = [];
      const targets: TargetCheck[] = [];
      const memory: MemoryReading[] = [];
      for (const name of CACHES) {
        const lone = await measure(name, origin, blob, 1);
        const crowd = await measure(name, origin, blob, sizes.herdClients);
        rows.push([
          name,
          String(crowd.originGets),
          (crowd.originBytes / MiB).toFixed(0),
          ratio(crowd.originBytes, blob.size),
          crowd.lastClientSeconds.toFixed(2),
          lone.lastClientSeconds.toFixed(2),
          ratio(crowd.lastClientSeconds, lone.lastClientSeconds),
          floor.wallSeconds.toFixed(2),
        ]);
        memory.push({ phase: `herd: ${sizes.herdClients} cold GETs of ${blob.size / MiB} MiB`, process: name, peakMiB: crowd.peakRssMiB });
        if (name === "berth") {
          targets.push(
            { target: "herd: origin bytes = 1.0 × blob size through berth", measured: ratio(crowd.originBytes, blob.size), met: crowd.originBytes === blob.size },
            { target: "herd: last client ≤ 1.2 × one lone cold pull", measured: ratio(crowd.lastClientSeconds, lone.lastClientSeconds), met: crowd.lastClientSeconds <= 1.2 * lone.lastClientSeconds },
            { target: `berth peak RSS ≤ ${RSS_LIMIT_MiB} MiB (herd)`, measured: `${crowd.peakRssMiB.toFixed(0)} MiB`, met: crowd.peakRssMiB <= RSS_LIMIT_MiB },
          );
        }
      }

      const link = open.keep(await LinkLimiter.start(origin, sizes.linkBytesPerSecond));
      for (const name of CACHES) {
        const lone = await measure(name, link, linkBlob, 1);
        const crowd = await measure(name, link, linkBlob, sizes.herdClients);
        linkRows.push([name, String(crowd.originGets), ratio(crowd.originBytes, linkBlob.size), crowd.lastClientSeconds.toFixed(2), lone.lastClientSeconds.toFixed(2), ratio(crowd.lastClientSeconds, lone.lastClientSeconds)]);
        if (name === "berth") {
          targets.push({
            target: `herd behind a ${sizes.linkBytesPerSecond / MiB} MiB/s link: last client ≤ 1.2 × one lone cold pull`,
            measured: ratio(crowd.lastClientSeconds, lone.lastClientSeconds),
            met: crowd.lastClientSeconds <= 1.2 * lone.lastClientSeconds,
          });
        }
      }
      return {
        tables: [
          {
            title: `Thundering herd: ${sizes.herdClients} concurrent cold GETs of one ${blob.size / MiB} MiB blob`,
            columns: ["cache", "origin GETs", "origin MiB", "÷ blob size", "last client s", "lone cold GET s", "last ÷ lone", "floor: nginx, warm, s"],
            rows,
          },
          {
            title: `Thundering herd behind a ${sizes.linkBytesPerSecond / MiB} MiB/s link: ${sizes.herdClients} concurrent cold GETs of one ${linkBlob.size / MiB} MiB blob, the origin's answers sharing the link`,
            columns: ["cache", "origin GETs", "÷ blob size", "last client s", "lone cold GET s", "last ÷ lone"],
            rows: linkRows,
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
