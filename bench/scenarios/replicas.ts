import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { CONTAINERD_ACCEPT } from "../../test/support/containerd.js";
import { OriginRegistry } from "../../test/support/origin-registry.js";
import { Replicas } from "../../test/support/replicas.js";
import { downloadConcurrently, MiB, type DownloadBatch } from "../curl-download.js";
import { measureLoad, type LoadResult } from "../http-load.js";
import { buildBenchImage, pushImage } from "../images.js";
import { LinkLimiter } from "../link-limiter.js";
import { OpenResources } from "../open-resources.js";
import { originBlobGets } from "../origin-traffic.js";
import { MIRROR_PREFIX, QuietBerth } from "../quiet-berth.js";
import { ratio } from "../report.js";
import type { BenchContext, Scenario, Table, TargetCheck } from "../scenario.js";

const REPLICAS = 3;
const ACCEPT = { Accept: CONTAINERD_ACCEPT.join(", ") };
/** Replicas log warnings only, as QuietBerth does: no line per request. */
const QUIET = { BERTH_LOG_LEVEL: "warn" };

/** Several batches of concurrent downloads at once, as one batch: every client's bytes over the last one's time. */
async function downloadAll(batches: { url: string; clients: number }[], size: number): Promise<DownloadBatch> {
  const started = performance.now();
  const done = await Promise.all(batches.map(({ url, clients }) => downloadConcurrently(url, clients, size)));
  const downloads = done.flatMap((batch) => batch.downloads);
  const wallSeconds = (performance.now() - started) / 1000;
  return { downloads, wallSeconds, throughputMiBs: downloads.reduce((sum, d) => sum + d.bytes, 0) / MiB / wallSeconds };
}

/**
 * berth's cluster tier: three replicas on one Swift bucket and one Redis (test/support/replicas.ts). Does scale-out scale
 * (warm reads with each replica behind its own NIC), does the cluster fetch each blob once for
 * a simulated rollout, what does Redis cost on the warm path, and what does losing it cost?
 * (The herd spread over the replicas is the `replicas-herd` scenario.)
 */
export const replicas: Scenario = {
  name: "replicas",
  description: "3 replicas on Swift + Redis: scale-out of warm reads, a rollout's origin bytes, warm manifests with and without Redis",
  async run(context) {
    const open = new OpenResources();
    try {
      const origin = open.keep(await OriginRegistry.start());
      const link = open.keep(await LinkLimiter.start(origin, context.sizes.linkBytesPerSecond));
      const tables: Table[] = [];
      const targets: TargetCheck[] = [];
      await scaleOut({ ...context, open, tables, targets });
      await manifests({ ...context, open, tables, targets });
      await rollout({ ...context, open, origin, link, tables, targets });
      return { tables, targets, memory: [] };
    } finally {
      await open.closeAll();
    }
  },
};

interface Step extends BenchContext {
  open: OpenResources;
  tables: Table[];
  targets: TargetCheck[];
}

interface MirrorStep extends Step {
  origin: OriginRegistry;
  link: LinkLimiter;
}

/** Warm reads of one blob, each replica behind a NIC of its own: one replica, then three. */
async function scaleOut({ sizes, workDir, progress, open, tables, targets }: Step): Promise<void> {
  const image = await buildBenchImage(join(workDir, "scale-out"), "scale-out", [sizes.linkHerdBlob]);
  const { digest, size } = image.manifests[0].layers[0];
  const cluster = open.keep(await Replicas.start({ count: REPLICAS, env: QUIET }));
  await pushImage(image, `${cluster.members[0].host}/bench/warm:v1`);
  const nics = await Promise.all(cluster.members.map((member) => LinkLimiter.start(member, sizes.replicaNicBytesPerSecond)));
  nics.forEach((nic) => open.keep(nic));
  const clients = 2 * REPLICAS;
  const urlOf = (nic: LinkLimiter) => `http://${nic.host}/v2/bench/warm/blobs/${digest}`;
  for (const nic of nics) await downloadConcurrently(urlOf(nic), 1, size);
  progress(`scale-out: ${clients} clients on one replica, then spread over ${REPLICAS}`);
  const one = await downloadConcurrently(urlOf(nics[0]), clients, size);
  const all = await downloadAll(nics.map((nic) => ({ url: urlOf(nic), clients: clients / REPLICAS })), size);
  const nic = sizes.replicaNicBytesPerSecond / MiB;
  tables.push({
    title: `Warm reads of a ${size / MiB} MiB blob by ${clients} clients, each replica behind its own ${nic} MiB/s NIC (aggregate MiB/s)`,
    columns: ["1 replica", `${REPLICAS} replicas`, "ratio", `floor: ${REPLICAS} NICs`],
    rows: [[one.throughputMiBs.toFixed(0), all.throughputMiBs.toFixed(0), ratio(all.throughputMiBs, one.throughputMiBs), String(REPLICAS * nic)]],
  });
  targets.push({ target: `warm throughput with ${REPLICAS} replicas ≥ 2.5× one replica (a NIC each)`, measured: ratio(all.throughputMiBs, one.throughputMiBs), met: all.throughputMiBs >= 2.5 * one.throughputMiBs });
  await Promise.all(nics.map((n) => open.close(n)));
  await open.close(cluster);
}

/** Warm manifest GETs by tag on a replica other than the one pushed to, against one berth on disk; then with Redis stopped. */
async function manifests({ sizes, workDir, progress, open, tables, targets }: Step): Promise<void> {
  const image = await buildBenchImage(join(workDir, "small"), "small", [4096]);
  const cluster = open.keep(await Replicas.start({ count: REPLICAS, env: QUIET }));
  const disk = open.keep(await QuietBerth.start());
  await pushImage(image, `${cluster.members[0].host}/bench/small:v1`);
  await pushImage(image, `${disk.host}/bench/small:v1`);
  const replica = cluster.members[1];
  for (const berth of [disk, replica]) await expectOk(`${berth.url}/v2/bench/small/manifests/v1`);
  const load = (berth: { url: string }): Promise<LoadResult> =>
    measureLoad(`${berth.url}/v2/bench/small/manifests/v1`, { method: "GET", headers: ACCEPT, connections: sizes.loadConnections, durationSeconds: sizes.loadSeconds, scratchDir: workDir });
  progress("warm manifests: berth on disk, then a replica with Redis, then without");
  const onDisk = await load(disk);
  const withRedis = await load(replica);
  await cluster.redis.stop();
  await sleep(2000);
  await expectOk(`${replica.url}/v2/bench/small/manifests/v1`);
  const withoutRedis = await load(replica);
  await cluster.redis.restart();
  const row = (name: string, r: LoadResult) => [name, r.requestsPerSecond.toFixed(0), r.p99Ms.toFixed(1), String(r.errors)];
  tables.push({
    title: `Warm manifest GET by tag (wrk, ${sizes.loadConnections} connections, ${sizes.loadSeconds} s)`,
    columns: ["system", "req/s", "p99 ms", "errors"],
    rows: [row("berth on disk, one process", onDisk), row("a replica of 3 on Swift, Redis up", withRedis), row("the same replica, Redis stopped", withoutRedis)],
  });
  targets.push(
    { target: "warm manifests with Redis ≥ 0.8× a single disk-backed berth per replica", measured: ratio(withRedis.requestsPerSecond, onDisk.requestsPerSecond), met: withRedis.errors === 0 && withRedis.requestsPerSecond >= 0.8 * onDisk.requestsPerSecond },
    { target: "warm manifests with Redis: p99 ≤ 30 ms", measured: `${withRedis.p99Ms.toFixed(1)} ms`, met: withRedis.p99Ms <= 30 },
    { target: "Redis stopped: warm p99 ≤ 1.5× with Redis", measured: ratio(withoutRedis.p99Ms, withRedis.p99Ms), met: withoutRedis.errors === 0 && withoutRedis.p99Ms <= 1.5 * withRedis.p99Ms },
  );
  await open.close(disk);
  await open.close(cluster);
}

/** Many nodes pulling one image (its manifest, then each layer in turn) through the cluster at once, from the origin behind the link. */
async function rollout({ sizes, workDir, progress, open, origin, link, tables, targets }: MirrorStep): Promise<void> {
  const image = await buildBenchImage(join(workDir, "rollout"), "rollout", sizes.rolloutLayers);
  const layers = image.manifests[0].layers;
  const imageBytes = layers.reduce((sum, l) => sum + l.size, 0);
  await pushImage(image, `${origin.host}/bench/rollout:v1`);
  const cluster = open.keep(await Replicas.start({ count: REPLICAS, env: QUIET, config: { upstreams: [{ host: origin.host, url: link.url, prefix: MIRROR_PREFIX }] } }));
  progress(`rollout: ${sizes.rolloutClients} nodes pulling ${(imageBytes / MiB).toFixed(0)} MiB through ${REPLICAS} replicas`);
  const since = (await origin.accessLog()).length;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: sizes.rolloutClients }, async () => {
      const repository = `${cluster.next()}/v2/${MIRROR_PREFIX}/bench/rollout`;
      await expectOk(`${repository}/manifests/v1`);
      for (const layer of layers) await downloadConcurrently(`${repository}/blobs/${layer.digest}`, 1, layer.size);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const fetched = await originBlobGets(origin, since);
  const floor = imageBytes / sizes.linkBytesPerSecond;
  tables.push({
    title: `Simulated rollout: ${sizes.rolloutClients} nodes pull a ${(imageBytes / MiB).toFixed(0)} MiB image (${layers.length} layers) through ${REPLICAS} replicas, the origin behind ${sizes.linkBytesPerSecond / MiB} MiB/s`,
    columns: ["origin blob GETs", "origin bytes ÷ image", "seconds until the last node has it", "link floor s (image ÷ link)", "÷ floor", `bytes served ÷ s (MiB/s)`],
    rows: [[String(fetched.gets), ratio(fetched.bytes, imageBytes), seconds.toFixed(1), floor.toFixed(1), ratio(seconds, floor), ((sizes.rolloutClients * imageBytes) / MiB / seconds).toFixed(0)]],
  });
  targets.push({ target: `rollout of ${sizes.rolloutClients} nodes: origin bytes = 1× the image`, measured: ratio(fetched.bytes, imageBytes), met: fetched.bytes === imageBytes });
  await open.close(cluster);
}

async function expectOk(url: string): Promise<void> {
  const answer = await fetch(url, { headers: ACCEPT });
  await answer.arrayBuffer();
  if (answer.status !== 200) throw new Error(`GET ${url}: ${answer.status}`);
}
