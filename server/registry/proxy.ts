import type NodeCache from "node-cache";
import type { UpstreamConfig } from "../../config/upstream-schema.js";
import type { Logger } from "../log.js";
import type { UpstreamMeter } from "../metrics/registry-metrics.js";
import { Digest } from "../reference/digest.js";
import type { ByteRange } from "../storage/driver.js";
import type { Descriptor, RepositoryMetadata } from "../storage/repository-metadata.js";
import type { Storage } from "../storage/storage.js";
import type { UploadSession } from "../storage/upload-store.js";
import type { UpstreamBackoff } from "../upstream/backoff.js";
import type { Provenance, UpstreamClient } from "../upstream/upstream-client.js";
import { UpstreamError } from "../upstream/upstream-error.js";
import type { BlobFills } from "./blob-fill.js";
import { asRegistryError, RegistryError, UpstreamDeniedError } from "./errors.js";
import { blobUnknown, manifestUnknown } from "./hosted.js";
import { parseManifest, referencedDigests } from "./manifest.js";
import type { MirrorVisibility } from "./mirror-visibility.js";
import type { RecentManifests } from "./recent-manifests.js";
import type { BlobContent, ManifestContent, ManifestReference, ManifestRequest, PutManifestResult, Repository, RequestedBy } from "./registry.js";

/** What every repository of one upstream shares. */
export interface Mirror {
  upstream: UpstreamConfig;
  client: UpstreamClient;
  storage: Storage;
  /** Metadata of what was mirrored from this upstream (tags, manifest and blob links). */
  cache: RepositoryMetadata;
  /** Manifests served lately, kept in memory while they stay linked in `cache`. */
  recentManifests: RecentManifests;
  fills: BlobFills;
  backoff: UpstreamBackoff;
  tagLists: NodeCache;
  /** Who may be served which cached content, when tenants are isolated. */
  visibility: MirrorVisibility;
  /** The upstream client and visibility key for whoever a request acts for. */
  requesterFor(who?: RequestedBy): Requester;
  /** Counts this upstream's cache hits and misses, and coalesced waiters. */
  meter: UpstreamMeter;
  log: Logger;
}

/** Whom a proxy repository serves: the upstream as they may see it, and their visibility key. */
export interface Requester {
  /** The upstream client with this requester's credentials. */
  client: UpstreamClient;
  /** `tenant:<ns>` or `subject:<sub>` when tenants are isolated; undefined when the cache is shared. */
  viewer?: string;
}

/**
 * A repository mirrored from an upstream: manifests and blobs are fetched once, verified and
 * kept in the content-addressable store; tags follow the upstream's tag policy; cached
 * content keeps being served while the upstream is down.
 */
export class ProxyRepository implements Repository {
  constructor(
    /** The name as the client addressed it (with a path prefix, if one routed here). */
    readonly name: string,
    /** The repository's name at the upstream. */
    readonly upstreamName: string,
    private readonly mirror: Mirror,
    private readonly requester: Requester = { client: mirror.client },
  ) {}

  private get client(): UpstreamClient {
    return this.requester.client;
  }

  get upstream(): UpstreamConfig {
    return this.mirror.upstream;
  }

  private get policy() {
    return this.mirror.upstream.tagPolicy;
  }

  private get backoffKey(): string {
    return `${this.mirror.upstream.host}/${this.upstreamName}`;
  }

  async getManifest(reference: ManifestReference, request?: ManifestRequest): Promise<ManifestContent> {
    const cachedOnly = request?.cachedOnly === true;
    if (reference.digest) return this.manifestByDigest(reference.digest, cachedOnly);
    return this.manifestByTag(reference.tag, cachedOnly);
  }

  private async manifestByDigest(digest: Digest, cachedOnly: boolean): Promise<ManifestContent> {
    const cached = await this.cachedManifest(digest);
    if (cached) return this.admitted(cached, cachedOnly);
    if (cachedOnly) throw manifestUnknown({ digest });
    this.refuseWhenOffline({ digest });
    return this.coalesced(digest.toString(), () => this.fetchManifest(digest.toString(), digest, { digest }));
  }

  private async manifestByTag(tag: string, cachedOnly: boolean): Promise<ManifestContent> {
    const entry = await this.mirror.cache.tagRecord(this.upstreamName, tag);
    if (entry && this.trustsCachedTag(entry.updated)) {
      const cached = await this.cachedManifest(entry.digest);
      if (cached) return this.admitted(cached, cachedOnly || this.policy === "Never");
    }
    if (this.policy === "Never" || cachedOnly) {
      if (entry) {
        const cached = await this.cachedManifest(entry.digest);
        if (cached) return this.admitted(cached, true);
      }
      if (cachedOnly) throw manifestUnknown({ tag });
      this.refuseWhenOffline({ tag });
    }
    return this.coalesced(tag, () => this.resolveTag(tag, entry));
  }

  /** Asks the upstream what `tag` is now; serves the cached digest when the upstream is down. */
  private async resolveTag(tag: string, entry: { digest: Digest } | undefined): Promise<ManifestContent> {
    try {
      const head = await this.upstreamCall(() => this.client.manifest(this.upstreamName, tag, "HEAD"));
      const digest = head.digest ? Digest.parse(head.digest) : undefined;
      if (digest) {
        const cached = await this.cachedManifest(digest);
        if (cached) {
          await this.recordTag(tag, digest, entry?.digest);
          await this.recordProvenance(cached, head);
          return cached;
        }
      }
      const fetched = await this.fetchManifest(digest ? digest.toString() : tag, digest, { tag });
      await this.recordTag(tag, fetched.digest, entry?.digest);
      return fetched;
    } catch (err) {
      if (err instanceof UpstreamError && err.failure === "not-found" && entry) {
        await this.mirror.cache.deleteTag(this.upstreamName, tag);
      }
      if (entry && isOutage(err)) {
        const stale = await this.cachedManifest(entry.digest).then((m) => m && this.admitted(m, true).catch(() => undefined));
        if (stale) {
          this.mirror.log.warn({ upstream: this.mirror.upstream.host, repository: this.upstreamName, tag, err: (err as Error).message }, "serving cached tag: upstream unavailable");
          return { ...stale, warnings: [`upstream ${this.mirror.upstream.host} unavailable; serving the cached digest of ${tag}`] };
        }
      }
      throw this.translate(err, { tag });
    }
  }

  /**
   * Runs an upstream manifest lookup, or joins the one in flight for the same reference,
   * credentials and viewer: a burst of clients (or a storm while the upstream fails) costs one request.
   */
  private coalesced(reference: string, lookup: () => Promise<ManifestContent>): Promise<ManifestContent> {
    let inFlight = manifestLookups.get(this.client);
    if (!inFlight) manifestLookups.set(this.client, (inFlight = new Map()));
    const key = `${this.requester.viewer ?? ""} ${this.upstreamName}:${reference}`;
    const joined = inFlight.get(key);
    if (joined) return joined;
    const started = lookup().finally(() => inFlight.delete(key));
    inFlight.set(key, started);
    return started;
  }

  private trustsCachedTag(updated: Date): boolean {
    if (this.policy === "Never") return true;
    if (this.policy === "Always") return false;
    const ttl = this.mirror.upstream.tagTTL;
    return ttl === 0 || Date.now() - updated.getTime() < ttl;
  }

  /** Rewrites the tag when it moved, or to restart its TTL under IfNotPresent. */
  private async recordTag(tag: string, digest: Digest, previous: Digest | undefined): Promise<void> {
    if (previous?.equals(digest) && this.policy === "Always") return;
    await this.mirror.cache.setTag(this.upstreamName, tag, digest);
  }

  private async cachedManifest(digest: Digest): Promise<ManifestContent | undefined> {
    const recent = this.mirror.recentManifests.get(this.upstreamName, digest);
    // Still linked means still stored: the collector unlinks a manifest before it deletes it.
    if (recent && (await this.mirror.cache.hasManifest(this.upstreamName, digest))) {
      this.mirror.meter.cacheHit("manifest");
      return recent;
    }
    if (recent) this.mirror.recentManifests.forget(this.upstreamName, digest);
    const record = await this.mirror.cache.manifest(this.upstreamName, digest);
    if (!record) return undefined;
    const bytes = await this.mirror.storage.blobs.read(digest);
    if (!bytes) return undefined;
    this.mirror.meter.cacheHit("manifest");
    const manifest = { digest, mediaType: record.mediaType, bytes };
    this.mirror.recentManifests.remember(this.upstreamName, manifest);
    return manifest;
  }

  private async fetchManifest(reference: string, expected: Digest | undefined, asked: ManifestReference): Promise<ManifestContent> {
    this.mirror.meter.cacheMiss("manifest");
    const manifest = await this.upstreamCall(() => this.client.manifest(this.upstreamName, reference, "GET")).catch((err: unknown) => {
      throw this.translate(err, asked);
    });
    const bytes = manifest.bytes!;
    const digest = Digest.of(expected?.algorithm ?? "sha256", bytes);
    const claimed = manifest.digest ? Digest.parse(manifest.digest) : undefined;
    if ((expected && !digest.equals(expected)) || (claimed && claimed.algorithm === digest.algorithm && !claimed.equals(digest))) {
      throw this.translate(new UpstreamError("corrupt", `${this.mirror.upstream.host}: manifest ${this.upstreamName}:${reference} hashes to ${digest}, not ${expected ?? claimed}`), asked);
    }
    let mediaType: string;
    try {
      mediaType = parseManifest(bytes, manifest.mediaType || undefined).mediaType;
    } catch (err) {
      throw this.translate(new UpstreamError("corrupt", `${this.mirror.upstream.host}: manifest ${this.upstreamName}:${reference} is invalid: ${(err as Error).message}`), asked);
    }
    await this.mirror.storage.blobs.ingestBuffer(bytes, digest);
    await this.mirror.cache.linkManifest(this.upstreamName, digest, { mediaType, size: bytes.length });
    const fetched = { digest, mediaType, bytes };
    await this.recordProvenance(fetched, manifest);
    return fetched;
  }

  /**
   * Serves cached content to the requester only if it is public or their own upstream access
   * is confirmed (asking the upstream with their credentials when it is not); `cachedOnly`
   * forbids asking, so unconfirmed content is unknown to them.
   */
  private async admitted<T extends { warnings?: string[] }>(content: T & { digest: Digest; bytes?: Buffer }, cachedOnly: boolean, kind: "manifest" | "blob" = "manifest"): Promise<T> {
    const viewer = this.requester.viewer;
    if (!viewer) return content;
    const admission = await this.mirror.visibility.admission(this.upstreamName, content.digest, viewer);
    if (admission === "public" || admission === "confirmed") return content;
    const unknown = () => (kind === "manifest" ? manifestUnknown({ digest: content.digest }) : blobUnknown(content.digest));
    const stale = () => ({ ...content, warnings: [...(content.warnings ?? []), `upstream ${this.mirror.upstream.host} unavailable; serving content your access to was confirmed earlier`] });
    if (cachedOnly) {
      if (admission === "stale") return stale();
      throw unknown();
    }
    try {
      const provenance =
        kind === "manifest"
          ? await this.upstreamCall(() => this.client.manifest(this.upstreamName, content.digest.toString(), "HEAD"))
          : await this.upstreamCall(() => this.client.blobSize(this.upstreamName, content.digest.toString()));
      await this.recordProvenance(content, provenance);
      return content;
    } catch (err) {
      if (admission === "stale" && isOutage(err)) return stale();
      throw this.translate(err, kind === "manifest" ? { digest: content.digest } : undefined, kind === "blob" ? content.digest : undefined);
    }
  }

  /** The upstream served this to the requester: so it may see it, and, when it needed no credentials, so may anyone. A manifest vouches for what it references. */
  private async recordProvenance(content: { digest: Digest; bytes?: Buffer; mediaType?: string }, provenance: Provenance): Promise<void> {
    const viewer = this.requester.viewer;
    if (!viewer) return;
    const digests = [content.digest, ...(content.bytes ? referencedDigests(content.bytes, content.mediaType) : [])];
    await this.mirror.visibility.record(this.upstreamName, digests, viewer, provenance.anonymous);
  }

  async statBlob(digest: Digest): Promise<number> {
    const size = await this.mirror.storage.blobs.size(digest);
    if (size !== undefined) {
      await this.admitted({ digest }, this.policy === "Never", "blob");
      return size;
    }
    const fill = this.mirror.fills.get(digest);
    if (fill) {
      await this.admitted({ digest }, false, "blob");
      await fill.sized;
      if (fill.size !== undefined) return fill.size;
    }
    this.refuseWhenOffline(undefined, digest);
    const upstreamSize = await this.upstreamCall(async () => (await this.client.blobSize(this.upstreamName, digest.toString())).size).catch((err: unknown) => {
      throw this.translate(err, undefined, digest);
    });
    if (upstreamSize !== undefined) return upstreamSize;
    const started = this.startFill(digest);
    await started.finished;
    if (started.size === undefined) throw this.translate(started.error, undefined, digest);
    return started.size;
  }

  async openBlob(digest: Digest, range?: ByteRange): Promise<BlobContent> {
    if ((await this.mirror.storage.blobs.size(digest)) !== undefined) {
      const admitted = await this.admitted({ digest }, this.policy === "Never", "blob");
      const stored = await this.mirror.storage.blobs.open(digest, range);
      if (stored) {
        this.mirror.meter.cacheHit("blob");
        return { ...stored, warnings: admitted.warnings };
      }
    }
    this.mirror.meter.cacheMiss("blob");
    this.refuseWhenOffline(undefined, digest);
    if (this.mirror.fills.get(digest)) await this.admitted({ digest }, false, "blob");
    const fill = this.startFill(digest);
    await fill.sized;
    if (fill.size === undefined) await fill.finished;
    if (fill.state === "failed" || fill.size === undefined) throw this.translate(fill.error, undefined, digest);
    return { size: fill.size, stream: await fill.open(range) };
  }

  private startFill(digest: Digest) {
    const waiting = this.mirror.backoff.remaining(this.backoffKey);
    if (waiting > 0) throw this.unavailable(waiting);
    let headersArrived = false;
    let provenance: Provenance | undefined;
    const joined = this.mirror.fills.join(digest, {
      fetch: async () => {
        const blob = await this.upstreamCall(() => this.client.blob(this.upstreamName, digest.toString()));
        headersArrived = true;
        provenance = blob;
        return blob;
      },
      onStored: async () => {
        await this.mirror.cache.linkBlob(this.upstreamName, digest);
        if (provenance) await this.recordProvenance({ digest }, provenance);
      },
      onFailed: (err) => {
        if (headersArrived && err instanceof UpstreamError && err.isOutage) this.recordOutage(err);
      },
    });
    if (!joined.started) this.mirror.meter.coalescedWaiter();
    return joined.fill;
  }

  async tags(): Promise<string[]> {
    const key = this.backoffKey;
    const cached = this.mirror.tagLists.get<string[]>(key);
    if (cached) return cached;
    if (this.policy !== "Never") {
      try {
        const tags = (await this.upstreamCall(() => this.client.tags(this.upstreamName))).sort();
        this.mirror.tagLists.set(key, tags);
        return tags;
      } catch (err) {
        if (!isOutage(err)) throw this.translate(err);
      }
    }
    const local = await this.mirror.cache.tags(this.upstreamName);
    if (local.length === 0) throw new RegistryError("NAME_UNKNOWN", undefined, { name: this.name });
    return local;
  }

  async referrers(subject: Digest): Promise<Descriptor[]> {
    if (this.policy === "Never") return [];
    try {
      const body = await this.upstreamCall(() => this.client.referrers(this.upstreamName, subject.toString()));
      const index = JSON.parse(body.toString("utf8")) as { manifests?: Descriptor[] };
      return Array.isArray(index.manifests) ? index.manifests : [];
    } catch (err) {
      if (err instanceof UpstreamError && err.failure === "not-found") return [];
      if (err instanceof SyntaxError) return [];
      throw this.translate(err);
    }
  }

  async putManifest(): Promise<PutManifestResult> {
    throw this.readOnly();
  }
  async deleteManifest(): Promise<void> {
    throw this.readOnly();
  }
  async deleteBlob(): Promise<void> {
    throw this.readOnly();
  }
  async startUpload(): Promise<UploadSession> {
    throw this.readOnly();
  }
  async upload(): Promise<UploadSession> {
    throw this.readOnly();
  }
  async appendUpload(): Promise<UploadSession> {
    throw this.readOnly();
  }
  async completeUpload(): Promise<number> {
    throw this.readOnly();
  }
  async cancelUpload(): Promise<void> {
    throw this.readOnly();
  }
  async mountBlob(): Promise<boolean> {
    throw this.readOnly();
  }

  private readOnly(): RegistryError {
    return new RegistryError("UNSUPPORTED", `${this.name} is mirrored from ${this.mirror.upstream.host} and read-only; push to a hosted repository`);
  }

  /** Under tag policy Never berth never contacts the upstream. */
  private refuseWhenOffline(reference?: ManifestReference, digest?: Digest): void {
    if (this.policy !== "Never") return;
    const detail = `not cached, and ${this.mirror.upstream.host} has tagPolicy Never`;
    if (digest) throw new RegistryError("BLOB_UNKNOWN", `blob unknown to registry: ${detail}`, { digest: digest.toString() });
    throw new RegistryError("MANIFEST_UNKNOWN", `manifest unknown to registry: ${detail}`, { reference: reference?.tag ?? reference?.digest?.toString() });
  }

  /** Runs an upstream request unless the upstream is backing off, and keeps the backoff state. */
  private async upstreamCall<T>(call: () => Promise<T>): Promise<T> {
    const waiting = this.mirror.backoff.remaining(this.backoffKey);
    if (waiting > 0) throw new UpstreamError("unreachable", `${this.backoffKey} is backing off`, { retryAfterMs: waiting });
    try {
      const result = await call();
      this.mirror.backoff.success(this.backoffKey);
      return result;
    } catch (err) {
      if (err instanceof UpstreamError) {
        if (err.isOutage && !/is backing off$/.test(err.message)) {
          this.recordOutage(err);
        } else if (err.failure === "not-found") {
          this.mirror.backoff.success(this.backoffKey);
        }
      }
      throw err;
    }
  }

  private recordOutage(err: UpstreamError): void {
    const wait = this.mirror.backoff.failure(this.backoffKey, err.options.retryAfterMs);
    this.mirror.log.warn({ upstream: this.mirror.upstream.host, repository: this.upstreamName, err: err.message, backoffMs: wait }, "upstream failed; backing off");
  }

  private unavailable(waitMs: number): RegistryError {
    return new RegistryError("UNAVAILABLE", `upstream ${this.mirror.upstream.host} is unavailable; retry later`, undefined, {
      headers: { "Retry-After": String(Math.max(1, Math.ceil(waitMs / 1000))) },
    });
  }

  /** Maps an upstream failure to what berth's client is told. */
  private translate(err: unknown, reference?: ManifestReference, digest?: Digest): RegistryError {
    if (!(err instanceof UpstreamError)) return asRegistryError(err);
    switch (err.failure) {
      case "not-found":
        if (digest) return blobUnknown(digest);
        if (reference) return manifestUnknown(reference);
        return new RegistryError("NAME_UNKNOWN", undefined, { name: this.name });
      case "denied":
        return new UpstreamDeniedError(`upstream ${this.mirror.upstream.host} refused berth's credentials for ${this.upstreamName}`);
      case "rate-limited": {
        const wait = this.mirror.backoff.remaining(this.backoffKey) || err.options.retryAfterMs || 10_000;
        return new RegistryError("TOOMANYREQUESTS", `upstream ${this.mirror.upstream.host} is rate-limiting; retry later`, undefined, {
          headers: { "Retry-After": String(Math.max(1, Math.ceil(wait / 1000))) },
        });
      }
      case "corrupt":
        this.mirror.log.error({ upstream: this.mirror.upstream.host, err: err.message }, "upstream sent corrupt content");
        return new RegistryError("UNKNOWN", `upstream ${this.mirror.upstream.host} sent content that does not match its digest`, undefined, { status: 502 });
      default:
        return this.unavailable(this.mirror.backoff.remaining(this.backoffKey) || err.options.retryAfterMs || 10_000);
    }
  }
}

/** Upstream manifest lookups in flight, per upstream client (one per set of credentials), viewer and `repository:reference`. */
const manifestLookups = new WeakMap<UpstreamClient, Map<string, Promise<ManifestContent>>>();

function isOutage(err: unknown): boolean {
  return err instanceof UpstreamError && err.isOutage;
}
