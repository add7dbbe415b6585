import { join } from "node:path";
import { OriginRegistry } from "../../test/support/origin-registry.js";
import { buildBenchImage, pushImage } from "../images.js";
import { OpenResources } from "../open-resources.js";
import { MIRROR_PREFIX, QuietBerth } from "../quiet-berth.js";
import { ratio, rotated } from "../report.js";
import type { Scenario, TargetCheck } from "../scenario.js";
import { measureLoad, type LoadResult } from "../http-load.js";
import { CONTAINERD_ACCEPT } from "../../test/support/containerd.js";

const ACCEPT = CONTAINERD_ACCEPT.join(", ");

const SYSTEMS = ["Distribution", "Distribution proxy", "berth"] as const;

/** HEAD and GET of a cached manifest by tag and by digest under load (wrk; ab for HEAD): berth vs Distribution's proxy vs Distribution serving the repository itself. */
export const manifests: Scenario = {
  name: "manifests",
  description: "HEAD/GET (ab/wrk) of a cached manifest by tag and digest: berth vs Distribution's proxy vs plain Distribution",
  async run({ sizes, workDir, progress }) {
    const open = new OpenResources();
    try {
      const image = await buildBenchImage(join(workDir, "layout"), "small", [4096]);
      const origin = open.keep(await OriginRegistry.start());
      await pushImage(image, `${origin.host}/bench/small:v1`);
      const proxy = open.keep(await OriginRegistry.start({ proxy: { remoteUrl: origin.url } }));
      const berth = open.keep(await QuietBerth.start(origin));
      const base: Record<(typeof SYSTEMS)[number], string> = {
        Distribution: `${origin.url}/v2/bench/small/manifests/`,
        "Distribution proxy": `${proxy.url}/v2/bench/small/manifests/`,
        berth: `${berth.url}/v2/${MIRROR_PREFIX}/bench/small/manifests/`,
      };
      const cases = [
        { name: "HEAD by tag", method: "HEAD", reference: "v1", byTag: true },
        { name: "GET by tag", method: "GET", reference: "v1", byTag: true },
        { name: "HEAD by digest", method: "HEAD", reference: image.digest, byTag: false },
        { name: "GET by digest", method: "GET", reference: image.digest, byTag: false },
      ] as const;
      for (const system of SYSTEMS) {
        for (const { reference } of cases) await expectManifest(`${base[system]}${reference}`, image.digest);
      }

      const results = new Map<string, LoadResult>();
      for (const [index, testCase] of cases.entries()) {
        for (const system of rotated(SYSTEMS, index)) {
          progress(`${testCase.name}: ${system}`);
          results.set(
            `${testCase.name}/${system}`,
            await measureLoad(`${base[system]}${testCase.reference}`, {
              method: testCase.method,
              headers: { Accept: ACCEPT },
              connections: sizes.loadConnections,
              durationSeconds: sizes.loadSeconds,
              scratchDir: workDir,
            }),
          );
        }
      }

      const at = (name: string, system: string) => results.get(`${name}/${system}`)!;
      const errorNote = (r: LoadResult) => (r.errors > 0 ? ` (${r.errors} errors)` : "");
      const targets: TargetCheck[] = cases
        .filter((c) => c.byTag)
        .flatMap(({ name }) => {
          const [plain, proxied, ours] = SYSTEMS.map((s) => at(name, s));
          const clean = [plain, proxied, ours].every((r) => r.errors === 0 && r.requestsPerSecond > 0);
          return [
            { target: `${name} (warm): berth ≥ 5 × Distribution proxy requests/s`, measured: ratio(ours.requestsPerSecond, proxied.requestsPerSecond), met: clean && ours.requestsPerSecond >= 5 * proxied.requestsPerSecond },
            { target: `${name} (warm): berth ≥ 2 × plain Distribution requests/s`, measured: ratio(ours.requestsPerSecond, plain.requestsPerSecond), met: clean && ours.requestsPerSecond >= 2 * plain.requestsPerSecond },
            {
              target: `${name} (warm): berth p99 below both`,
              measured: `${ours.p99Ms.toFixed(2)} ms vs ${proxied.p99Ms.toFixed(2)} / ${plain.p99Ms.toFixed(2)} ms`,
              met: clean && ours.p99Ms < proxied.p99Ms && ours.p99Ms < plain.p99Ms,
            },
          ];
        });
      return {
        tables: [
          {
            title: `Manifest traffic: ${sizes.loadConnections} keep-alive connections (GET: wrk, HEAD: ab -k), ${sizes.loadSeconds} s per cell; requests/s and p99 latency`,
            columns: ["request", ...SYSTEMS.map((s) => `${s} req/s`), "berth ÷ proxy", "berth ÷ plain", ...SYSTEMS.map((s) => `${s} p99 ms`)],
            rows: cases.map(({ name }) => {
              const [plain, proxied, ours] = SYSTEMS.map((s) => at(name, s));
              return [
                name,
                ...[plain, proxied, ours].map((r) => `${r.requestsPerSecond.toFixed(0)}${errorNote(r)}`),
                ratio(ours.requestsPerSecond, proxied.requestsPerSecond),
                ratio(ours.requestsPerSecond, plain.requestsPerSecond),
                ...[plain, proxied, ours].map((r) => r.p99Ms.toFixed(2)),
              ];
            }),
          },
        ],
        targets,
        memory: [],
      };
    } finally {
      await open.closeAll();
    }
  },
};

/** Warms a cache and proves the URL serves the manifest: a benchmark of 404s would be worthless. */
async function expectManifest(url: string, digest: string): Promise<void> {
  const response = await fetch(url, { headers: { Accept: ACCEPT } });
  await response.arrayBuffer();
  const served = response.headers.get("docker-content-digest");
  if (response.status !== 200 || served !== digest) throw new Error(`GET ${url}: ${response.status}, digest ${served}, expected ${digest}`);
}
