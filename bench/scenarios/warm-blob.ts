import { join } from "node:path";
import { OriginRegistry } from "../../test/support/origin-registry.js";
import { downloadConcurrently, MiB } from "../curl-download.js";
import { buildBenchImage, pushImage } from "../images.js";
import { Nginx } from "../nginx.js";
import { OpenResources } from "../open-resources.js";
import { QuietBerth } from "../quiet-berth.js";
import { median, ratio, rotated } from "../report.js";
import { RssSampler } from "../rss-sampler.js";
import { RSS_LIMIT_MiB, type MemoryReading, type Scenario, type TargetCheck } from "../scenario.js";

const CLIENT_COUNTS = [1, 16];

/** berth serving a blob it hosts, against nginx sendfile-ing the same file and Distribution serving the same blob. */
export const warmBlob: Scenario = {
  name: "warm-blob",
  description: "warm GET of one large blob, 1 and 16 clients: berth vs nginx (sendfile) vs Distribution",
  async run({ sizes, workDir, progress }) {
    const open = new OpenResources();
    try {
      progress(`building a ${sizes.warmBlob / MiB} MiB blob`);
      const layout = join(workDir, "layout");
      const image = await buildBenchImage(layout, "warm", [sizes.warmBlob]);
      const { digest, size } = image.manifests[0].layers[0];
      const nginx = open.keep(await Nginx.serving(join(layout, "blobs", "sha256")));
      const distribution = open.keep(await OriginRegistry.start());
      const berth = open.keep(await QuietBerth.start());
      progress("pushing it to Distribution and to berth");
      for (const registry of [distribution, berth]) await pushImage(image, `${registry.host}/bench/warm:v1`);

      const systems = [
        { name: "nginx", url: `${nginx.url}/${digest.slice("sha256:".length)}`, pid: undefined },
        { name: "Distribution", url: `${distribution.url}/v2/bench/warm/blobs/${digest}`, pid: distribution.pid },
        { name: "berth", url: `${berth.url}/v2/bench/warm/blobs/${digest}`, pid: berth.pid },
      ];
      const throughput = new Map<string, number[]>();
      const memory: MemoryReading[] = [];
      for (const clients of CLIENT_COUNTS) {
        const peaks = new Map<string, number>();
        for (let round = 0; round < sizes.warmRounds; round++) {
          for (const system of rotated(systems, round)) {
            progress(`${clients} client(s), round ${round + 1}: ${system.name}`);
            const sampler = system.pid === undefined ? undefined : RssSampler.start(system.pid);
            const batch = await downloadConcurrently(system.url, clients, size);
            const peak = await sampler?.stop();
            if (peak !== undefined) peaks.set(system.name, Math.max(peaks.get(system.name) ?? 0, peak));
            const key = `${system.name}/${clients}`;
            throughput.set(key, [...(throughput.get(key) ?? []), batch.throughputMiBs]);
          }
        }
        if (clients > 1) {
          for (const [process, peakMiB] of peaks) memory.push({ phase: `warm ${size / MiB} MiB blob, ${clients} clients`, process, peakMiB });
        }
      }

      const at = (system: string, clients: number) => median(throughput.get(`${system}/${clients}`)!);
      const rows = CLIENT_COUNTS.map((clients) => [
        String(clients),
        at("nginx", clients).toFixed(0),
        at("Distribution", clients).toFixed(0),
        at("berth", clients).toFixed(0),
        ratio(at("berth", clients), at("nginx", clients)),
        ratio(at("berth", clients), at("Distribution", clients)),
      ]);
      const targets: TargetCheck[] = CLIENT_COUNTS.map((clients) => ({
        target: `warm blob, ${clients} client(s): berth ≥ 0.9 × nginx`,
        measured: ratio(at("berth", clients), at("nginx", clients)),
        met: at("berth", clients) >= 0.9 * at("nginx", clients),
      }));
      const berthPeak = memory.find((m) => m.process === "berth");
      if (berthPeak) targets.push({ target: `berth peak RSS ≤ ${RSS_LIMIT_MiB} MiB (${berthPeak.phase})`, measured: `${berthPeak.peakMiB.toFixed(0)} MiB`, met: berthPeak.peakMiB <= RSS_LIMIT_MiB });
      return {
        tables: [
          {
            title: `Warm blob GET, ${size / MiB} MiB, aggregate MiB/s (median of ${sizes.warmRounds})`,
            columns: ["clients", "nginx", "Distribution", "berth", "berth / nginx", "berth / Distribution"],
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
