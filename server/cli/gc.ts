import { parseArgs } from "node:util";
import { createLogger } from "../log.js";
import { ContentCollector, type CollectionReport } from "../registry/content-collector.js";
import { DeliveredBlobs } from "../registry/delivered-blobs.js";
import { RepositoryMetadata } from "../storage/repository-metadata.js";
import { openStorage } from "../storage/open-storage.js";
import { formatBytes } from "../human-readable.js";
import { OperationError } from "./cli-error.js";
import { OFFLINE_OPTIONS, offlineConfig } from "./offline-config.js";
import { berthClientFrom, REMOTE_OPTIONS, REMOTE_USAGE } from "./remote-options.js";
import type { Verb } from "./verb.js";

/** `berth gc`: garbage collection and cache eviction, by a running berth or on a stopped one's storage. */
export const gc: Verb = {
  summary: "gc                       collect unreferenced blobs and evict cached ones beyond cache.maxSize",
  help: `usage: berth gc [--berth URL] [--json]
       berth gc --storage DIR [--config FILE] [--json]

Runs berth's garbage collection and cache eviction once: blobs nothing references (older than
cache.minAge) are deleted, and mirrored blobs beyond cache.maxSize are evicted least recently
used first. Hosted content is never removed.

By default it asks the running berth (POST /admin/gc, which berth answers on loopback only:
run it on berth's host or in its pod). With --storage or --config it collects a STOPPED
berth's storage itself, with that config's upstreams and cache settings. Replicas
(coordination) collect on their leader only: a replica that does not lead says so.

  --json                 print the collection report as JSON
  --storage DIR          a stopped berth's storage root (default: storage.root of --config)
  --config FILE          that berth's config file
${REMOTE_USAGE}`,

  async run(args, terminal) {
    const { values } = parseArgs({ args, options: { ...REMOTE_OPTIONS, ...OFFLINE_OPTIONS, json: { type: "boolean" } }, strict: true });
    const offline = values.storage !== undefined || values.config !== undefined;
    const report = offline ? await collectOffline(values) : await collectOnline(values);
    terminal.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${describe(report)}\n`);
  },
};

async function collectOnline(values: Parameters<typeof berthClientFrom>[0]): Promise<CollectionReport> {
  const client = await berthClientFrom(values);
  const response = await client.send("POST", "/admin/gc");
  return (await response.json()) as CollectionReport;
}

async function collectOffline(values: { storage?: string; config?: string }): Promise<CollectionReport> {
  const config = await offlineConfig(values);
  if (config.coordination) {
    throw new OperationError(
      "this storage is shared by replicas (coordination is configured): run berth gc against a running replica (without --storage/--config), whose collection leader collects; with every replica stopped, drop coordination from the config",
    );
  }
  const storage = await openStorage(config.storage);
  await storage.blobs.usage.load();
  const collector = new ContentCollector(
    storage,
    // Where berth keeps each upstream's mirror metadata (as server.ts opens it).
    config.upstreams.map((upstream) => ({
      cache: new RepositoryMetadata(storage.driver, `mirrors/${upstream.prefix}`),
      delivered: new DeliveredBlobs(storage.driver, `mirrors/${upstream.prefix}`),
    })),
    { maxCacheBytes: config.cache.maxSize, minAgeMs: config.cache.minAge, uploadMaxAgeMs: config.storage.uploadMaxAge },
    createLogger("warn"),
  );
  try {
    return await collector.run();
  } catch (err) {
    throw new OperationError(`collection failed: ${(err as Error).message}`);
  } finally {
    await storage.blobs.usage.save();
    await storage.close();
  }
}

function describe(report: CollectionReport): string {
  if (report.skipped === "not-leader") return "not collected: another replica leads collection (it runs every cache.collectInterval)";
  if (report.skipped) return `not collected: collection is paused while coordination through Redis is down or recovering (${report.skipped})`;
  return (
    `collected: ${report.blobs} blobs checked; ${report.deletedUnreferenced} unreferenced deleted, ${report.evicted} cached evicted, ${formatBytes(report.freedBytes)} freed, ${report.expiredUploads} abandoned uploads removed; ` +
    `${formatBytes(report.hostedBytes)} hosted and ${formatBytes(report.cacheBytes)} cached remain`
  );
}
