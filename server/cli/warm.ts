import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { Digest } from "../reference/digest.js";
import type { ImageReference } from "../reference/image-reference.js";
import { isIndexType } from "../registry/media-types.js";
import { ACCEPT_ANY_MANIFEST, type BerthClient } from "./berth-client.js";
import { formatBytes, formatSeconds } from "../human-readable.js";
import { OperationError, UsageError } from "./cli-error.js";
import { imageArguments } from "./image-arguments.js";
import { berthClientFrom, REMOTE_OPTIONS, REMOTE_USAGE } from "./remote-options.js";
import { transferProgressOn, type TransferProgress } from "./transfer-progress.js";
import type { Verb } from "./verb.js";

/** Blobs fetched at once: enough to overlap round trips, few enough not to crowd a node's link. */
const PARALLEL_BLOBS = 3;
/** How long berth may take to store a blob it has finished sending (fsync and rename of a large blob on a slow disk). */
const STORE_WAIT_MS = 60_000;
/** Longest pause between two checks that a sent blob is stored. */
const STORE_POLL_MAX_MS = 250;

interface PlatformFilter {
  os: string;
  architecture: string;
  variant?: string;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  urls?: string[];
  platform?: { os?: string; architecture?: string; variant?: string };
}

interface WarmTotals {
  manifests: number;
  blobs: number;
  bytes: number;
  cachedBlobs: number;
  cachedBytes: number;
}

/** `berth warm IMAGE...`: pulls every manifest and blob of each image through berth, so berth caches them. */
export const warm: Verb = {
  summary: "warm IMAGE...            pre-pull images into a running berth: manifests and every blob",
  help: `usage: berth warm [--berth URL] [--platform OS/ARCH[/VARIANT]]... [--all-platforms] IMAGE...

Pulls each IMAGE through a running berth, which caches what it serves: the manifest or index,
the manifest of every platform (or only those given with --platform, repeatable), and every
config and layer blob. It returns once berth has stored every one of them. A progress bar per
blob goes to stderr on a terminal, a line per blob otherwise; the summary (bytes, blobs, blobs
berth already had, time) goes to stdout.

  --all-platforms        every platform of an index (the default)
  --platform P           only platform P (e.g. linux/arm64 or linux/arm/v7); repeatable
${REMOTE_USAGE}`,

  async run(args, terminal) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...REMOTE_OPTIONS, platform: { type: "string", multiple: true }, "all-platforms": { type: "boolean" } },
      allowPositionals: true,
      strict: true,
    });
    if (values.platform && values["all-platforms"]) throw new UsageError("give --platform or --all-platforms, not both");
    const platforms = (values.platform ?? []).map(parsePlatformFilter);
    const images = imageArguments(positionals, "warm");
    const client = await berthClientFrom(values);
    const progress = transferProgressOn(terminal.stderr);
    let failed = 0;
    for (const { text, reference } of images) {
      const started = performance.now();
      try {
        const { digest, totals } = await warmImage(client, reference, platforms, progress).finally(() => progress.stop());
        terminal.stdout.write(
          `warmed ${text}@${digest}: ${totals.manifests} manifests, ${totals.blobs} blobs, ${formatBytes(totals.bytes)}; ` +
            `${totals.cachedBlobs} blobs (${formatBytes(totals.cachedBytes)}) were already cached; ${formatSeconds(performance.now() - started)}\n`,
        );
      } catch (err) {
        if (!(err instanceof OperationError)) throw err;
        if (images.length === 1) throw new OperationError(`${text}: ${err.message}`);
        failed++;
        terminal.stderr.write(`berth warm: ${text}: ${err.message}\n`);
      }
    }
    if (failed > 0) throw new OperationError(`${failed} of ${images.length} images not warmed`);
  },
};

function parsePlatformFilter(text: string): PlatformFilter {
  const [os, architecture, variant, extra] = text.split("/");
  if (!os || !architecture || extra !== undefined || variant === "") throw new UsageError(`--platform takes OS/ARCH[/VARIANT], not ${JSON.stringify(text)}`);
  return { os, architecture, ...(variant ? { variant } : {}) };
}

function matches(filter: PlatformFilter, platform: Descriptor["platform"]): boolean {
  return platform?.os === filter.os && platform.architecture === filter.architecture && (filter.variant === undefined || platform.variant === filter.variant);
}

async function warmImage(client: BerthClient, image: ImageReference, platforms: PlatformFilter[], progress: TransferProgress): Promise<{ digest: string; totals: WarmTotals }> {
  const totals: WarmTotals = { manifests: 0, blobs: 0, bytes: 0, cachedBlobs: 0, cachedBytes: 0 };
  const blobs = new Map<string, Descriptor>();
  const fetchManifest = async (reference: string, accept: string) => {
    const response = await client.send("GET", client.imagePath(image, "manifests", reference), { accept });
    const bytes = Buffer.from(await response.arrayBuffer());
    totals.manifests++;
    totals.bytes += bytes.length;
    const mediaType = (response.headers.get("content-type") ?? "").split(";")[0].trim();
    return { bytes, mediaType, digest: response.headers.get("docker-content-digest") ?? reference };
  };
  const visit = async (manifest: { bytes: Buffer; mediaType: string }, name: string): Promise<void> => {
    const body = parseJson(manifest.bytes, name) as { mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
    if (isIndexType(manifest.mediaType) || Array.isArray(body.manifests)) {
      const entries = (body.manifests ?? []).filter((entry) => platforms.length === 0 || entry.platform === undefined || platforms.some((p) => matches(p, entry.platform)));
      if (entries.length === 0) {
        const offered = (body.manifests ?? []).map((e) => [e.platform?.os, e.platform?.architecture, e.platform?.variant].filter(Boolean).join("/")).join(", ");
        throw new OperationError(`${name} has no manifest for ${platforms.map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join("/")).join(" or ")} (it has ${offered || "none"})`);
      }
      for (const entry of entries) await visit(await fetchManifest(entry.digest, entry.mediaType ?? ACCEPT_ANY_MANIFEST), entry.digest);
      return;
    }
    // Foreign layers (with urls) are not in any registry: runtimes fetch them from their urls.
    for (const blob of [body.config, ...(body.layers ?? [])]) if (blob && !blob.urls?.length) blobs.set(blob.digest, blob);
  };

  const top = await fetchManifest(image.digest?.toString() ?? image.pullTag!, ACCEPT_ANY_MANIFEST);
  await visit(top, image.toString());
  const queue = [...blobs.values()];
  let failure: unknown;
  const worker = async () => {
    for (let blob = queue.shift(); blob; blob = queue.shift()) {
      try {
        const cached = await fetchBlob(client, image, blob, progress);
        totals.blobs++;
        totals.bytes += blob.size;
        if (cached) {
          totals.cachedBlobs++;
          totals.cachedBytes += blob.size;
        }
      } catch (err) {
        failure ??= err;
        queue.length = 0;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_BLOBS, queue.length) }, worker));
  if (failure) throw failure;
  return { digest: top.digest, totals };
}

/** GETs a blob through berth and checks it; true when berth already had it. */
async function fetchBlob(client: BerthClient, image: ImageReference, blob: Descriptor, progress: TransferProgress): Promise<boolean> {
  const digest = Digest.parse(blob.digest);
  if (!digest) throw new OperationError(`a manifest names blob ${JSON.stringify(blob.digest)}, which is not a digest berth can verify`);
  const tracker = progress.start(`${digest.algorithm}:${digest.hex.slice(0, 12)}`, blob.size);
  try {
    const response = await client.send("GET", client.imagePath(image, "blobs", blob.digest));
    const hash = createHash(digest.algorithm);
    let received = 0;
    for await (const chunk of response.body!) {
      hash.update(chunk);
      received += chunk.length;
      tracker.advance(chunk.length);
    }
    if (received !== blob.size) throw new OperationError(`blob ${blob.digest}: received ${received} bytes, the manifest says ${blob.size}`);
    if (hash.digest("hex") !== digest.hex) throw new OperationError(`blob ${blob.digest}: the bytes berth sent do not hash to it`);
    // berth's Berth-Cache header: whether its store held the blob before this request.
    const cacheHeader = response.headers.get("berth-cache");
    if (cacheHeader === "miss") await untilStored(client, image, blob.digest);
    const cached = cacheHeader === "hit";
    tracker.done(cached);
    return cached;
  } catch (err) {
    tracker.failed((err as Error).message);
    if (err instanceof OperationError) throw err;
    throw new OperationError(`blob ${blob.digest}: ${(err as Error).message}`);
  }
}

/**
 * berth sends a fetched blob's last byte once it has verified, a moment before the blob is
 * durable in its store; warm reports a blob only once a HEAD finds it stored, so that berth
 * stopping right after warm returns loses nothing.
 */
async function untilStored(client: BerthClient, image: ImageReference, digest: string): Promise<void> {
  const deadline = Date.now() + STORE_WAIT_MS;
  for (let pause = 5; ; pause = Math.min(pause * 2, STORE_POLL_MAX_MS)) {
    const head = await client.send("HEAD", client.imagePath(image, "blobs", digest));
    if (head.headers.get("berth-cache") !== "miss") return;
    if (Date.now() >= deadline) throw new OperationError(`blob ${digest}: berth sent it but has not stored it after ${formatSeconds(STORE_WAIT_MS)} (see berth's log)`);
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

function parseJson(bytes: Buffer, name: string): unknown {
  try {
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new OperationError(`${name}: the manifest berth sent is not JSON`);
  }
}
