import { randomBytes } from "node:crypto";
import { BerthProcess } from "../support/berth-process.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { mirrorOf, ORIGIN_PREFIX } from "../mirror/real-origin.js";
import { runPullLoad, type PullLoadReport, type PullRequest } from "./pull-load.js";
import { configBlob, getVerified, pushImage } from "./registry-client.js";
import { sha256 } from "./store-audit.js";
import { CONTAINERD_ACCEPT } from "../support/containerd.js";

const REPOSITORY = "load/app";

/**
 * A berth process mirroring a real origin (CNCF Distribution) with one image cached (config,
 * a 64 KiB and a 1 MiB layer), pulled by `connections` clients at once for `durationMs`:
 * manifest HEAD and GET by tag and by digest, whole blobs, ranged blobs, blob HEADs.
 */
export async function runWarmMirrorLoad(connections: number, durationMs: number): Promise<PullLoadReport> {
  const origin = await OriginRegistry.start();
  let berth: BerthProcess | undefined;
  try {
    berth = await BerthProcess.start({ config: mirrorOf(origin) });
    const mix = await warmMirrorPulls(origin, berth.url);
    const report = await runPullLoad({ url: berth.url, pid: berth.pid, connections, durationMs, mix });
    if (!berth.running) throw new Error(`berth died under load: ${berth.diagnostics()}`);
    return report;
  } finally {
    await berth?.close();
    await origin.close();
  }
}

/**
 * Pushes the load's image to `origin`, pulls it once through the berth at `berthUrl` (which
 * mirrors `origin` under the prefix `origin`), and returns the pulls of the load.
 */
export async function warmMirrorPulls(origin: { url: string }, berthUrl: string): Promise<PullRequest[]> {
  const config = configBlob("load");
  const small = randomBytes(64 * 1024);
  const large = randomBytes(1024 * 1024);
  const manifest = await pushImage(origin.url, REPOSITORY, "v1", config, [small, large]);
  const base = `/v2/${ORIGIN_PREFIX}/${REPOSITORY}`;
  const accept = { accept: CONTAINERD_ACCEPT.join(", ") };
  const blob = (content: Buffer) => `${base}/blobs/${sha256(content)}`;
  await getVerified(`${berthUrl}${base}/manifests/v1`, sha256(manifest), accept);
  for (const content of [config, small, large]) await getVerified(`${berthUrl}${blob(content)}`, sha256(content));
  return [
    { name: "manifest HEAD by tag", method: "HEAD", path: `${base}/manifests/v1`, headers: accept, content: manifest },
    { name: "manifest GET by tag", method: "GET", path: `${base}/manifests/v1`, headers: accept, content: manifest },
    { name: "manifest HEAD by digest", method: "HEAD", path: `${base}/manifests/${sha256(manifest)}`, headers: accept, content: manifest },
    { name: "manifest GET by digest", method: "GET", path: `${base}/manifests/${sha256(manifest)}`, headers: accept, content: manifest },
    { name: "config GET", method: "GET", path: blob(config), content: config },
    { name: "64 KiB layer GET", method: "GET", path: blob(small), content: small },
    { name: "1 MiB layer GET", method: "GET", path: blob(large), content: large },
    { name: "1 MiB layer GET with Range", method: "GET", path: blob(large), content: large, ranged: true },
    { name: "layer HEAD", method: "HEAD", path: blob(large), content: large },
  ];
}

/** The figures of a load run, in one line. */
export function describeLoad(report: PullLoadReport): string {
  const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
  return (
    `${report.connections} connections for ${report.durationMs / 1000} s: ${report.requests} requests (${report.requestsPerSecond}/s), ${report.failures} failed; ` +
    `berth VmRSS ${mib(report.rssBeforeBytes)} before, ${mib(report.peakRssBytes)} peak, ${mib(report.rssAfterBytes)} after; ` +
    `fds ${report.fdsBefore} before, ${report.peakFds} peak, ${report.fdsAfter} after`
  );
}
