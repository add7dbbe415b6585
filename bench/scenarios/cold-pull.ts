import { rm } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { OriginRegistry } from "../../test/support/origin-registry.js";
import { skopeoCopy } from "../../test/support/skopeo.js";
import { MiB } from "../curl-download.js";
import { buildBenchImage, pushImage } from "../images.js";
import { Nginx } from "../nginx.js";
import { NodeRelay } from "../node-relay.js";
import { OpenResources } from "../open-resources.js";
import { MIRROR_PREFIX, QuietBerth } from "../quiet-berth.js";
import { median, ratio, rotated } from "../report.js";
import type { Scenario } from "../scenario.js";

const DIRECT = "origin (direct)";
const NGINX_CACHE = "nginx proxy_cache (no digest check)";
const NODE_RELAY = "Node.js relay (no cache)";
const HASHING_NODE_RELAY = "Node.js relay hashing (no store)";
const PROXY = "Distribution proxy";
const BERTH = "berth";

/** Where skopeo pulls from; started fresh (empty cache) for every pull. */
interface PullSource {
  reference: string;
  close(): Promise<void>;
}

/**
 * `skopeo copy docker://... dir:OUT` of a ~1 GiB multi-layer image through each cache, from
 * empty, and straight from the origin. References show where the limit lies for a cache on
 * this machine: nginx caching what it proxies (in C, hashing nothing), and a bare Node.js
 * relay (no cache at all: what any Node.js process in the path costs), also hashing what it
 * passes on (what verifying costs on top).
 */
export const coldPull: Scenario = {
  name: "cold-pull",
  description: "skopeo pull of a multi-layer image through empty caches: berth vs Distribution's proxy vs the origin itself (and nginx's cache, and a bare Node.js relay, for reference)",
  async run({ sizes, workDir, progress }) {
    const open = new OpenResources();
    try {
      const image = await buildBenchImage(join(workDir, "layout"), "cold", sizes.coldLayers);
      const manifest = image.manifests[0];
      const imageBytes = manifest.size + manifest.config.size + manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
      const origin = open.keep(await OriginRegistry.start());
      progress(`pushing a ${(imageBytes / MiB).toFixed(0)} MiB image of ${manifest.layers.length} layers to the origin`);
      await pushImage(image, `${origin.host}/bench/cold:v1`);

      const systems: { name: string; start(): Promise<PullSource> }[] = [
        { name: DIRECT, start: async () => ({ reference: `docker://${origin.host}/bench/cold:v1`, close: async () => {} }) },
        {
          name: NGINX_CACHE,
          start: async () => {
            const nginx = await Nginx.caching(origin.url);
            return { reference: `docker://${nginx.host}/bench/cold:v1`, close: () => nginx.close() };
          },
        },
        {
          name: NODE_RELAY,
          start: async () => {
            const relay = await NodeRelay.start(origin.url);
            return { reference: `docker://${relay.host}/bench/cold:v1`, close: () => relay.close() };
          },
        },
        {
          name: HASHING_NODE_RELAY,
          start: async () => {
            const relay = await NodeRelay.start(origin.url, true);
            return { reference: `docker://${relay.host}/bench/cold:v1`, close: () => relay.close() };
          },
        },
        {
          name: PROXY,
          start: async () => {
            const proxy = await OriginRegistry.start({ proxy: { remoteUrl: origin.url } });
            return { reference: `docker://${proxy.host}/bench/cold:v1`, close: () => proxy.close() };
          },
        },
        {
          name: BERTH,
          start: async () => {
            const berth = await QuietBerth.start(origin);
            return { reference: `docker://${berth.host}/${MIRROR_PREFIX}/bench/cold:v1`, close: () => berth.close() };
          },
        },
      ];
      const seconds = new Map<string, number[]>();
      const out = join(workDir, "out");
      for (let round = 0; round < sizes.coldRounds; round++) {
        for (const system of rotated(systems, round)) {
          progress(`round ${round + 1}: ${system.name}`);
          const source = open.keep(await system.start());
          const started = performance.now();
          await skopeoCopy(source.reference, `dir:${out}`);
          seconds.set(system.name, [...(seconds.get(system.name) ?? []), (performance.now() - started) / 1000]);
          await open.close(source);
          await rm(out, { recursive: true, force: true });
        }
      }

      const throughput = (name: string) => imageBytes / MiB / median(seconds.get(name)!);
      const [direct, proxy, berth] = [DIRECT, PROXY, BERTH].map(throughput);
      return {
        tables: [
          {
            title: `Cold pull: skopeo copy of ${(imageBytes / MiB).toFixed(0)} MiB in ${manifest.layers.length} layers, fresh cache each run (median of ${sizes.coldRounds})`,
            columns: ["source", "seconds", "MiB/s", "÷ direct"],
            rows: systems.map((s) => [s.name, median(seconds.get(s.name)!).toFixed(2), throughput(s.name).toFixed(0), ratio(throughput(s.name), direct)]),
          },
        ],
        targets: [
          { target: "cold pull through berth ≥ 0.9 × direct from the origin", measured: ratio(berth, direct), met: berth >= 0.9 * direct },
          { target: "cold pull through berth ≥ 1.0 × through the Distribution proxy", measured: ratio(berth, proxy), met: berth >= proxy },
        ],
        memory: [],
      };
    } finally {
      await open.closeAll();
    }
  },
};
