import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { CONTAINERD_ACCEPT } from "../../test/support/containerd.js";
import { rawS3Client, type S3Endpoint } from "../../test/support/swift-s3.js";
import { downloadConcurrently, MiB } from "../curl-download.js";
import { measureLoad } from "../http-load.js";
import { buildBenchImage, pushImage } from "../images.js";
import { OpenResources } from "../open-resources.js";
import { BenchSwift } from "../swift.js";
import { QuietBerth } from "../quiet-berth.js";
import { ratio } from "../report.js";
import { RssSampler } from "../rss-sampler.js";
import { RSS_LIMIT_MiB, type MemoryReading, type Scenario, type Table, type TargetCheck } from "../scenario.js";

const BUCKET = "bench";

/** berth's S3 counters, read from its /metrics. */
async function s3Counters(berth: QuietBerth): Promise<{ requests: number; moved: number; byOperation: Map<string, number> }> {
  const page = await (await fetch(`${berth.url}/metrics`)).text();
  const byOperation = new Map<string, number>();
  let moved = 0;
  for (const line of page.split("\n")) {
    const request = /^berth_s3_requests_total\{operation="(\w+)"\} (\d+)/.exec(line);
    // Readiness probes (one every 10 s) serve no client.
    if (request && request[1] !== "Probe") byOperation.set(request[1], Number(request[2]));
    const bytes = /^berth_s3_(sent|copied)_bytes_total (\d+)/.exec(line);
    if (bytes) moved += Number(bytes[2]);
  }
  return { requests: [...byOperation.values()].reduce((a, b) => a + b, 0), moved, byOperation };
}

/** Pushes `size` bytes as a chunked upload of `chunk`-byte PATCHes; returns the seconds it took, and those of its completing PUT. */
async function chunkedPush(berth: QuietBerth, repository: string, size: number, chunk: number): Promise<{ seconds: number; completing: number }> {
  const base = randomBytes(Math.min(chunk, size));
  const nonce = randomBytes(16);
  const hash = createHash("sha256");
  const started = performance.now();
  const post = await fetch(`${berth.url}/v2/${repository}/blobs/uploads/`, { method: "POST" });
  if (post.status !== 202) throw new Error(`POST upload: ${post.status}`);
  let location = post.headers.get("location")!;
  for (let offset = 0, index = 0; offset < size; offset += chunk, index++) {
    const piece = Buffer.from(base.subarray(0, Math.min(chunk, size - offset)));
    nonce.copy(piece, 0, 0, Math.min(16, piece.length));
    piece.writeUInt32BE(index, Math.min(16, piece.length - 4));
    hash.update(piece);
    const patch = await fetch(new URL(location, berth.url), {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset}-${offset + piece.length - 1}` },
      body: piece,
    });
    if (patch.status !== 202) throw new Error(`PATCH at ${offset}: ${patch.status} ${await patch.text()}`);
    location = patch.headers.get("location")!;
  }
  const url = new URL(location, berth.url);
  url.searchParams.set("digest", `sha256:${hash.digest("hex")}`);
  const completing = performance.now();
  const put = await fetch(url, { method: "PUT", signal: AbortSignal.timeout(1_800_000) });
  if (put.status !== 201) throw new Error(`PUT upload: ${put.status} ${await put.text()}`);
  return { seconds: (performance.now() - started) / 1000, completing: (performance.now() - completing) / 1000 };
}

/** `clients` concurrent plain SDK GETs of one object, read to the end: the bucket's own speed. */
async function sdkGets(s3: S3Endpoint, key: string, clients: number, size: number): Promise<number> {
  const client = rawS3Client(s3);
  try {
    const started = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        const answer = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
        let bytes = 0;
        for await (const chunk of answer.Body as AsyncIterable<Buffer>) bytes += chunk.length;
        if (bytes !== size) throw new Error(`SDK GET ${key}: ${bytes} of ${size} bytes`);
      }),
    );
    return (clients * size) / MiB / ((performance.now() - started) / 1000);
  } finally {
    client.destroy();
  }
}

/** berth on Swift's s3api against berth on disk and the bucket's own speed, and what it asks of S3. */
export const s3: Scenario = {
  name: "s3",
  description: "berth on Swift's s3api: chunked pushes (S3 bytes, requests, time vs disk), warm blob vs a plain SDK GET, warm manifests",
  async run({ sizes, workDir, progress }) {
    const open = new OpenResources();
    try {
      progress("starting Swift's s3api");
      const swift = open.keep(await BenchSwift.start(join(workDir, "swift"), BUCKET));
      const { endpoint } = swift;
      const disk = open.keep(await QuietBerth.start());
      const onS3 = open.keep(
        await QuietBerth.start(undefined, {
          storage: swift.storage(),
        }),
      );
      const tables: Table[] = [];
      const targets: TargetCheck[] = [];
      const memory: MemoryReading[] = [];

      // 1. Many small chunks: what reaches S3.
      const smallChunks = sizes.warmBlob >= 1024 * MiB ? 100 : 20;
      progress(`chunked push of ${smallChunks} × 1 MiB`);
      const before = await s3Counters(onS3);
      const smallS3 = await chunkedPush(onS3, "bench/chunks", smallChunks * MiB, MiB);
      const after = await s3Counters(onS3);
      const smallDisk = await chunkedPush(disk, "bench/chunks", smallChunks * MiB, MiB);
      const moved = after.moved - before.moved;
      const requests = after.requests - before.requests;
      const operations = [...after.byOperation].map(([op, n]) => [op, n - (before.byOperation.get(op) ?? 0)] as const).filter(([, n]) => n > 0);
      tables.push({
        title: `Chunked push of ${smallChunks} MiB in ${smallChunks} × 1 MiB chunks`,
        columns: ["system", "seconds", "S3 requests", "MiB moved to or within S3", "× blob size"],
        rows: [
          ["berth on disk", smallDisk.seconds.toFixed(2), "—", "—", "—"],
          ["berth on Swift", smallS3.seconds.toFixed(2), String(requests), (moved / MiB).toFixed(0), (moved / (smallChunks * MiB)).toFixed(2)],
          ["Distribution 2.8.2 s3 driver on Swift (the issue's anchor for 100 × 1 MiB, not measured by this run)", "66× its filesystem time", "1,117", "5,035 (server-side copies)", "50.35"],
        ],
      });
      tables.push({ title: "berth's S3 requests for that push, by operation", columns: ["operation", "requests"], rows: operations.map(([op, n]) => [op, String(n)]) });
      targets.push({ target: `${smallChunks} × 1 MiB chunks: S3 bytes ≤ 3× blob size`, measured: `${(moved / (smallChunks * MiB)).toFixed(2)}×, ${requests} requests`, met: moved <= 3 * smallChunks * MiB });

      // 2. A large chunked push, timed against berth on disk.
      const large = sizes.warmBlob;
      progress(`chunked push of ${large / MiB} MiB in 16 MiB chunks: disk, then S3`);
      const largeDisk = await chunkedPush(disk, "bench/large", large, 16 * MiB);
      const sampler = RssSampler.start(onS3.pid);
      const largeS3 = await chunkedPush(onS3, "bench/large", large, 16 * MiB);
      memory.push({ phase: `chunked push of ${large / MiB} MiB to berth on Swift`, process: "berth (S3)", peakMiB: await sampler.stop() });
      tables.push({
        title: `Chunked push of ${large / MiB} MiB in 16 MiB chunks`,
        columns: ["berth on disk (s)", "of which the completing PUT", "berth on Swift (s)", "of which the completing PUT (S3's copy under the digest)", "ratio"],
        rows: [[largeDisk.seconds.toFixed(2), largeDisk.completing.toFixed(2), largeS3.seconds.toFixed(2), largeS3.completing.toFixed(2), ratio(largeS3.seconds, largeDisk.seconds)]],
      });
      targets.push({ target: `chunked push of ${large / MiB} MiB: ≤ 1.5× berth on disk`, measured: ratio(largeS3.seconds, largeDisk.seconds), met: largeS3.seconds <= 1.5 * largeDisk.seconds });

      // 3. A warm large blob, 16 clients: berth on Swift vs a plain SDK GET from the same Swift.
      progress(`warm ${large / MiB} MiB blob, 16 clients`);
      const image = await buildBenchImage(join(workDir, "layout"), "warm", [large]);
      const layer = image.manifests[0].layers[0];
      await pushImage(image, `${onS3.host}/bench/warm:v1`);
      const key = `blobs/sha256/${layer.digest.slice(7, 9)}/${layer.digest.slice(7)}`;
      const sdk = await sdkGets(endpoint, key, 16, layer.size);
      const warmSampler = RssSampler.start(onS3.pid);
      const viaBerth = (await downloadConcurrently(`${onS3.url}/v2/bench/warm/blobs/${layer.digest}`, 16, layer.size)).throughputMiBs;
      memory.push({ phase: `warm ${large / MiB} MiB blob, 16 clients, berth on Swift`, process: "berth (S3)", peakMiB: await warmSampler.stop() });
      tables.push({ title: `Warm ${large / MiB} MiB blob, 16 clients (MiB/s)`, columns: ["plain SDK GET from Swift", "berth on Swift", "ratio"], rows: [[sdk.toFixed(0), viaBerth.toFixed(0), ratio(viaBerth, sdk)]] });
      targets.push({ target: "warm blob, 16 clients, berth on Swift ≥ 0.8× a plain SDK GET", measured: ratio(viaBerth, sdk), met: viaBerth >= 0.8 * sdk });

      // 4. Warm manifests by tag: berth on Swift vs berth on disk, and S3 requests on the warm path.
      progress("warm manifests by tag");
      const small = await buildBenchImage(join(workDir, "small"), "small", [4096]);
      for (const berth of [disk, onS3]) await pushImage(small, `${berth.host}/bench/small:v1`);
      const accept = { Accept: CONTAINERD_ACCEPT.join(", ") };
      for (const berth of [disk, onS3]) await fetch(`${berth.url}/v2/bench/small/manifests/v1`, { headers: accept });
      const quiet = await s3Counters(onS3);
      const load = { method: "GET" as const, headers: accept, connections: sizes.loadConnections, durationSeconds: sizes.loadSeconds, scratchDir: workDir };
      const onDisk = await measureLoad(`${disk.url}/v2/bench/small/manifests/v1`, load);
      const onSwift = await measureLoad(`${onS3.url}/v2/bench/small/manifests/v1`, load);
      const warmRequests = (await s3Counters(onS3)).requests - quiet.requests;
      tables.push({
        title: `Warm manifest GET by tag (wrk, ${sizes.loadConnections} connections, ${sizes.loadSeconds} s)`,
        columns: ["berth on disk (req/s)", "berth on Swift (req/s)", "ratio", "S3 requests during the run"],
        rows: [[onDisk.requestsPerSecond.toFixed(0), onSwift.requestsPerSecond.toFixed(0), ratio(onSwift.requestsPerSecond, onDisk.requestsPerSecond), String(warmRequests)]],
      });
      targets.push({
        target: "warm manifests by tag on Swift ≥ 0.8× on disk, 0 S3 requests",
        measured: `${ratio(onSwift.requestsPerSecond, onDisk.requestsPerSecond)}, ${warmRequests} requests`,
        met: onSwift.requestsPerSecond >= 0.8 * onDisk.requestsPerSecond && warmRequests === 0,
      });
      const peak = Math.max(...memory.map((m) => m.peakMiB));
      targets.push({ target: `berth on Swift peak RSS ≤ ${RSS_LIMIT_MiB} MiB`, measured: `${peak.toFixed(0)} MiB`, met: peak <= RSS_LIMIT_MiB });
      return { tables, targets, memory };
    } finally {
      await open.closeAll();
    }
  },
};

