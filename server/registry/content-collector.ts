import type { Logger } from "../log.js";
import { NO_METRICS, type RegistryMetrics } from "../metrics/registry-metrics.js";
import { Digest } from "../reference/digest.js";
import type { RepositoryMetadata } from "../storage/repository-metadata.js";
import type { MultipartReport } from "../storage/s3/multipart-collector.js";
import { CollectionTurnLostError, type CollectionSkip, type CollectionTurn } from "../storage/collection-guard.js";
import type { Storage } from "../storage/storage.js";
import type { DeliveredBlobs } from "./delivered-blobs.js";
import { referencedDigests } from "./manifest.js";

/** What the collector reads and updates of one upstream's mirror. */
export interface MirrorRecords {
  /** Links of what was mirrored, per repository. */
  cache: RepositoryMetadata;
  delivered: DeliveredBlobs;
}

export interface CollectorOptions {
  /** Cap on mirrored content that no hosted manifest references; 0 = unbounded. */
  maxCacheBytes: number;
  /** Unreferenced blobs younger than this are kept: a push may be about to link them. */
  minAgeMs: number;
  /** Upload sessions started longer ago than this are abandoned, and removed. */
  uploadMaxAgeMs: number;
}

export interface CollectionReport {
  blobs: number;
  hostedBytes: number;
  /** Mirrored content left after eviction. */
  cacheBytes: number;
  deletedUnreferenced: number;
  evicted: number;
  freedBytes: number;
  expiredUploads: number;
  /** With driver s3: abandoned multipart uploads aborted, and those left (younger than storage.s3.abandonedUploadAge). */
  multipartUploads?: MultipartReport;
  /** Set when this process did not collect: another replica leads collection, or Redis is down. */
  skipped?: CollectionSkip;
}

interface CachedBlob {
  digest: Digest;
  size: number;
  lastUsed: number;
  links: { metadata: RepositoryMetadata; repository: string; kind: "manifest" | "blob" }[];
}

/**
 * Garbage collection and cache eviction over the one content-addressable store. Hosted
 * content (every manifest of a hosted repository, what those manifests reference, and every
 * uploaded layer) is never removed. Blobs nothing links are removed once older than
 * `minAgeMs`. Mirrored blobs are evicted least recently used first while they exceed
 * `maxCacheBytes`, never while one is being read. Candidates are doomed after the scan and
 * condemned one by one by the storage's CollectionGuard just before deletion, so a blob
 * pinned or linked meanwhile (on any replica) is spared; with replicas, only the guard's
 * leader collects.
 */
export class ContentCollector {
  private running?: Promise<CollectionReport>;

  constructor(
    private readonly storage: Storage,
    private readonly mirrors: readonly MirrorRecords[],
    private readonly options: CollectorOptions,
    private readonly log: Logger,
    private readonly metrics: RegistryMetrics = NO_METRICS,
  ) {}

  /** Runs one collection; concurrent callers share the run in progress. */
  run(): Promise<CollectionReport> {
    this.running ??= this.collect().finally(() => (this.running = undefined));
    return this.running;
  }

  private async collect(): Promise<CollectionReport> {
    const turn = await this.storage.blobs.guard.turn();
    if (typeof turn === "string") return this.skip(turn);
    try {
      return await this.collectOnTurn(turn);
    } catch (err) {
      if (err instanceof CollectionTurnLostError) return this.skip(err.reason);
      throw err;
    } finally {
      await turn.end().catch((err: unknown) => this.log.debug({ err }, "could not end the collection turn"));
    }
  }

  private skip(reason: CollectionSkip): CollectionReport {
    if (reason === "not-leader") this.log.debug({}, "content collection skipped: another replica leads it");
    else this.log.warn({ reason }, "content collection paused: coordination through redis is down or recovering");
    this.metrics.collectionSkipped(reason);
    return { blobs: 0, hostedBytes: 0, cacheBytes: 0, deletedUnreferenced: 0, evicted: 0, freedBytes: 0, expiredUploads: 0, skipped: reason };
  }

  private async collectOnTurn(turn: CollectionTurn): Promise<CollectionReport> {
    // On S3 first: what the start-up listing missed joins the index before links are counted,
    // and abandoned multipart uploads should not wait for a long eviction.
    await this.storage.s3?.driver.reconcile();
    const multipartUploads = await this.storage.s3?.multipart.run();
    const hosted = await this.hostedDigests();
    const mirrored = await this.mirroredLinks();
    // An index berth synthesized is kept as cached content: evicted when the cache is full, not collected as garbage.
    for await (const digest of this.storage.synthesized.digests()) if (!mirrored.has(digest)) mirrored.set(digest, []);
    const report: CollectionReport = { blobs: 0, hostedBytes: 0, cacheBytes: 0, deletedUnreferenced: 0, evicted: 0, freedBytes: 0, expiredUploads: 0, ...(multipartUploads ? { multipartUploads } : {}) };
    const cached: CachedBlob[] = [];
    const garbage: { digest: Digest; size: number }[] = [];
    const now = Date.now();
    for await (const info of this.storage.blobs.stored()) {
      const digest = info.digest;
      report.blobs++;
      const key = digest.toString();
      if (hosted.has(key)) {
        report.hostedBytes += info.size;
        continue;
      }
      const links = mirrored.get(key);
      if (links) {
        report.cacheBytes += info.size;
        cached.push({ digest, size: info.size, lastUsed: this.storage.blobs.usage.lastRead(digest) ?? info.modified.getTime(), links });
        continue;
      }
      if (now - info.modified.getTime() >= this.options.minAgeMs) garbage.push({ digest, size: info.size });
    }
    await turn.doom(garbage.map((blob) => blob.digest));
    for (const blob of garbage) {
      if (!(await this.removeCondemned(turn, blob.digest, []))) continue;
      report.deletedUnreferenced++;
      report.freedBytes += blob.size;
    }
    if (this.options.maxCacheBytes > 0 && report.cacheBytes > this.options.maxCacheBytes) {
      cached.sort((a, b) => a.lastUsed - b.lastUsed);
      for (const blob of cached) {
        if (report.cacheBytes <= this.options.maxCacheBytes) break;
        await turn.doom([blob.digest]);
        if (!(await this.removeCondemned(turn, blob.digest, blob.links))) continue;
        report.evicted++;
        report.cacheBytes -= blob.size;
        report.freedBytes += blob.size;
      }
    }
    report.expiredUploads = await this.expireUploads();
    for (const mirror of this.mirrors) await mirror.cache.removeLegacyVisibility();
    await this.storage.blobs.usage.save();
    this.log.info({ collection: report }, "content collection finished");
    this.metrics.collected(report);
    return report;
  }

  private async expireUploads(): Promise<number> {
    let expired = 0;
    const cutoff = Date.now() - this.options.uploadMaxAgeMs;
    for (const id of await this.storage.uploads.ids()) {
      const session = await this.storage.uploads.get(id);
      if (session && Date.parse(session.startedAt) < cutoff) {
        await this.storage.uploads.cancel(id);
        expired++;
      }
    }
    return expired;
  }

  /** Removes a doomed blob if the turn condemns it (nobody pinned or linked it meanwhile); false when spared. */
  private async removeCondemned(turn: CollectionTurn, digest: Digest, links: CachedBlob["links"]): Promise<boolean> {
    if (!(await turn.condemn(digest))) return false;
    await this.remove(digest, links);
    await turn.removed(digest);
    return true;
  }

  /** Unlinks first, so a crash in between leaves an orphan blob (collected later), never a dangling link. */
  private async remove(digest: Digest, links: CachedBlob["links"]): Promise<void> {
    for (const link of links) {
      if (link.kind === "manifest") await link.metadata.unlinkManifest(link.repository, digest);
      else await link.metadata.unlinkBlob(link.repository, digest);
    }
    for (const mirror of this.mirrors) await mirror.delivered.forget(digest);
    await this.storage.holders.forget(digest);
    await this.storage.synthesized.forget(digest);
    await this.storage.blobs.delete(digest);
    this.storage.blobs.usage.forget(digest);
  }

  /**
   * Every digest hosted content needs: manifests, what they reference, and uploaded layers, as
   * this process knows them and as a walk of the store finds them (another replica's links).
   */
  private async hostedDigests(): Promise<Set<string>> {
    const keep = new Set<string>();
    const manifests = new Map<string, Digest>();
    for (const link of await this.links(this.storage.metadata)) {
      if (link.kind === "manifest") manifests.set(link.digest.toString(), link.digest);
      else keep.add(link.digest.toString());
    }
    for (const [key, digest] of manifests) {
      keep.add(key);
      const bytes = await this.storage.blobs.read(digest);
      if (bytes) for (const referenced of referencedDigests(bytes)) keep.add(referenced.toString());
    }
    return keep;
  }

  private async mirroredLinks(): Promise<Map<string, CachedBlob["links"]>> {
    const links = new Map<string, CachedBlob["links"]>();
    for (const { cache: metadata } of this.mirrors) {
      for (const { repository, kind, digest } of await this.links(metadata)) {
        const key = digest.toString();
        links.set(key, [...(links.get(key) ?? []), { metadata, repository, kind }]);
      }
    }
    return links;
  }

  /** The links under one metadata root, as this process knows them and as a walk of the store finds them, each once. */
  private async links(metadata: RepositoryMetadata): Promise<{ repository: string; kind: "manifest" | "blob"; digest: Digest }[]> {
    const found = new Map<string, { repository: string; kind: "manifest" | "blob"; digest: Digest }>();
    const add = (link: { repository: string; kind: "manifest" | "blob"; digest: Digest }) => found.set(`${link.kind} ${link.repository} ${link.digest}`, link);
    for (const repository of await metadata.repositories()) {
      for (const digest of await metadata.manifests(repository)) add({ repository, kind: "manifest", digest });
      for (const digest of await metadata.blobs(repository)) add({ repository, kind: "blob", digest });
    }
    for await (const link of metadata.walkLinks()) add(link);
    return [...found.values()];
  }
}
