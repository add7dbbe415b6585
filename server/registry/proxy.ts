import type { UpstreamConfig } from "../../config/upstream-schema.js";
import type { Logger } from "../log.js";
import type { UpstreamMeter } from "../metrics/registry-metrics.js";
import { Digest } from "../reference/digest.js";
import type { ByteRange } from "../storage/driver.js";
import type { Descriptor, RepositoryMetadata } from "../storage/repository-metadata.js";
import type { Storage } from "../storage/storage.js";
import type { UploadSession } from "../storage/uploads.js";
import type { UpstreamBackoff } from "../upstream/backoff.js";
import { ELSEWHERE, type ClusterLookups } from "./cluster-lookups.js";
import type { TagListCache } from "./tag-list-cache.js";
import type { Provenance, UpstreamClient } from "../upstream/upstream-client.js";
import { invalid } from "../upstream/upstream-answers.js";
import { UpstreamError } from "../upstream/upstream-error.js";
import type { Fills } from "./blob-fill.js";
import { asRegistryError, RegistryError, UpstreamDeniedError } from "./errors.js";
import { blobUnknown, manifestUnknown } from "./hosted.js";
import type { DeliveredBlobs } from "./delivered-blobs.js";
import { parseManifest } from "./manifest.js";
import type { MirrorVisibility } from "./mirror-visibility.js";
import type { RecentManifests } from "./recent-manifests.js";
import type { BlobContent, BlobInfo, ManifestContent, ManifestReference, ManifestRequest, PutManifestResult, Repository, RequestedBy } from "./registry.js";

/** What every repository of one upstream shares. */
export interface Mirror {
  upstream: UpstreamConfig;
  client: UpstreamClient;
  storage: Storage;
  /** Metadata of what was mirrored from this upstream (tags, manifest and blob links). */
  cache: RepositoryMetadata;
  /** Manifests served lately, kept in memory while they stay linked in `cache`. */
  recentManifests: RecentManifests;
  fills: Fills;
  backoff: UpstreamBackoff;
  tagLists: TagListCache;
  /** Manifest lookups coalesced with the other processes sharing the store. */
  lookups: ClusterLookups;
  /** Who may be served which repository's cached content, when tenants are isolated. */
  visibility: MirrorVisibility;
  /** Blobs this upstream itself delivered: the only ones it may serve from the shared store. */
  delivered: DeliveredBlobs;
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

/** What the client asked for: an error names only this, never what berth resolved it to. */
type Asked = { reference: ManifestReference; blob?: undefined } | { blob: Digest; reference?: undefined };

/**
 * A repository mirrored from an upstream: manifests and blobs are fetched once, verified and
 * kept in the content-addressable store; tags follow the upstream's tag policy; cached
 * content keeps being served while the upstream is down.
 *
 * The store is shared by every upstream and tenant (DESIGN §9): content is served through this
 * repository only if this upstream delivered it for this repository (or delivered it for
 * another of its repositories and says this one holds it too), and only to a requester whose
 * access to this repository the upstream confirmed with the requester's own credentials.
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
    return this.manifestByTag(reference.tag, cachedOnly, this.maxTagAge(request?.maxAgeMs));
  }

  private async manifestByDigest(digest: Digest, cachedOnly: boolean): Promise<ManifestContent> {
    const asked = { reference: { digest } };
    const cached = await this.cachedManifest(digest);
    if (cached) return this.admitted(cached, asked, cachedOnly);
    if (cachedOnly) throw manifestUnknown({ digest });
    this.refuseWhenOffline(asked);
    const stored = async () => {
      const cached = await this.cachedManifest(digest);
      return cached && this.admitted(cached, asked, false);
    };
    return this.coalesced(digest.toString(), () => this.fetchManifest(digest.toString(), digest, asked), stored);
  }

  /** `maxAge`: how old a resolved tag may be, in ms; undefined = any age. */
  private async manifestByTag(tag: string, cachedOnly: boolean, maxAge: number | undefined): Promise<ManifestContent> {
    const asked = { reference: { tag } };
    const entry = await this.mirror.cache.tagRecord(this.upstreamName, tag);
    if (entry && this.trustsCachedTag(entry.updated, maxAge)) {
      const cached = await this.cachedManifest(entry.digest);
      if (cached) return this.admitted(cached, asked, cachedOnly || this.policy === "Never");
    }
    if (this.policy === "Never" || cachedOnly) {
      if (entry) {
        const cached = await this.cachedManifest(entry.digest);
        if (cached) return this.admitted(cached, asked, true);
      }
      if (cachedOnly) throw manifestUnknown({ tag });
      this.refuseWhenOffline(asked);
    }
    const asking = Date.now();
    const stored = async () => {
      const fresh = await this.mirror.cache.tagRecord(this.upstreamName, tag);
      // Resolved since this request arrived: S3 keeps modification times to the second.
      if (!fresh || fresh.updated.getTime() < asking - 1000) return undefined;
      const cached = await this.cachedManifest(fresh.digest);
      return cached && this.admitted(cached, asked, false);
    };
    return this.coalesced(`${tag} ${maxAge ?? ""}`, () => this.resolveTag(tag, entry, maxAge), stored);
  }

  /**
   * Asks the upstream what `tag` is now, taking an answer at most `maxAge` old from a cache on the
   * way (a parent tier: so a node's tag policy reaches the origin); serves the cached digest when
   * the upstream is down.
   */
  private async resolveTag(tag: string, entry: { digest: Digest } | undefined, maxAge: number | undefined): Promise<ManifestContent> {
    const asked = { reference: { tag } };
    try {
      const head = await this.upstreamCall(() => this.client.manifest(this.upstreamName, tag, "HEAD", maxAge));
      await this.confirmAccess(head);
      const digest = head.digest ? Digest.parse(head.digest) : undefined;
      if (digest) {
        const cached = await this.cachedManifest(digest);
        if (cached) {
          await this.recordTag(tag, digest, entry?.digest);
          return cached;
        }
      }
      const fetched = await this.fetchManifest(digest ? digest.toString() : tag, digest, asked, digest ? undefined : maxAge);
      await this.recordTag(tag, fetched.digest, entry?.digest);
      return fetched;
    } catch (err) {
      if (err instanceof UpstreamError && err.failure === "not-found" && entry) {
        await this.mirror.cache.deleteTag(this.upstreamName, tag);
      }
      if (entry && isOutage(err)) {
        const stale = await this.cachedManifest(entry.digest).then((m) => m && this.admitted(m, asked, true).catch(() => undefined));
        if (stale) {
          this.mirror.log.warn({ upstream: this.mirror.upstream.host, repository: this.upstreamName, tag, err: (err as Error).message }, "serving cached tag: upstream unavailable");
          return { ...stale, warnings: [...(stale.warnings ?? []), `upstream ${this.mirror.upstream.host} unavailable; serving the cached digest of ${tag}`] };
        }
      }
      throw this.translate(err, asked);
    }
  }

  /**
   * Runs an upstream manifest lookup, or joins the one in flight for the same reference,
   * credentials and viewer: a burst of clients (or a storm while the upstream fails) costs one
   * request. A lookup another process sharing the store ran is read from the store (`stored`),
   * or run here when that finds nothing.
   */
  private coalesced(reference: string, lookup: () => Promise<ManifestContent>, stored: () => Promise<ManifestContent | undefined>): Promise<ManifestContent> {
    let inFlight = manifestLookups.get(this.client);
    if (!inFlight) manifestLookups.set(this.client, (inFlight = new Map()));
    const key = `${this.requester.viewer ?? ""} ${this.upstreamName}:${reference}`;
    const joined = inFlight.get(key);
    if (joined) return joined;
    const clusterWide = async () => {
      const result = await this.mirror.lookups.run(`${this.mirror.upstream.host} ${key}`, lookup);
      return result !== ELSEWHERE ? result : ((await stored()) ?? lookup());
    };
    const started = clusterWide().finally(() => inFlight.delete(key));
    inFlight.set(key, started);
    return started;
  }

  private trustsCachedTag(updated: Date, maxAge: number | undefined): boolean {
    if (this.policy === "Never") return true;
    return maxAge === undefined || (maxAge > 0 && Date.now() - updated.getTime() < maxAge);
  }

  /** How old a resolved tag may be: the tag policy's limit, or the client's when stricter; undefined = any age. */
  private maxTagAge(asked: number | undefined): number | undefined {
    const ttl = this.mirror.upstream.tagTTL;
    const own = this.policy === "Always" ? 0 : ttl === 0 ? undefined : ttl;
    if (own === undefined) return asked;
    return asked === undefined ? own : Math.min(own, asked);
  }

  /** Rewrites the tag when it moved, or to restart its TTL under IfNotPresent. */
  private async recordTag(tag: string, digest: Digest, previous: Digest | undefined): Promise<void> {
    if (previous?.equals(digest) && this.policy === "Always") return;
    await this.mirror.cache.setTag(this.upstreamName, tag, digest);
  }

  /** A manifest this upstream delivered for this repository, from memory or the store. */
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

  private async fetchManifest(reference: string, expected: Digest | undefined, asked: Asked, maxAge?: number): Promise<ManifestContent> {
    this.mirror.meter.cacheMiss("manifest");
    const manifest = await this.upstreamCall(() => this.client.manifest(this.upstreamName, reference, "GET", maxAge)).catch((err: unknown) => {
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
      throw this.translate(invalid(`${this.mirror.upstream.host}: manifest ${this.upstreamName}:${reference} is invalid: ${(err as Error).message}`, "a manifest that is not valid"), asked);
    }
    await this.mirror.storage.blobs.ingestBuffer(bytes, digest);
    await this.mirror.cache.linkManifest(this.upstreamName, digest, { mediaType, size: bytes.length });
    await this.confirmAccess(manifest);
    return { digest, mediaType, bytes };
  }

  /** Cached manifest content, once the requester is admitted to this repository (see admit). */
  private async admitted(content: ManifestContent, asked: Asked, cachedOnly: boolean): Promise<ManifestContent> {
    const warnings = await this.admit(asked, cachedOnly, () => this.client.manifest(this.upstreamName, content.digest.toString(), "HEAD"));
    return warnings.length === 0 ? content : { ...content, warnings: [...(content.warnings ?? []), ...warnings] };
  }

  /**
   * Lets the requester have this repository's cached content if the repository is public or the
   * upstream recently answered for it with the requester's own credentials; else asks the
   * upstream with them first (`ask`). `cachedOnly` forbids asking: unconfirmed content is then
   * unknown to them, and content confirmed earlier is served with a warning. Returns the warnings.
   */
  private async admit(asked: Asked | undefined, cachedOnly: boolean, ask: () => Promise<Provenance>): Promise<string[]> {
    const viewer = this.requester.viewer;
    if (!viewer) return [];
    const admission = await this.mirror.visibility.admission(this.upstreamName, viewer);
    if (admission === "public" || admission === "confirmed") return [];
    const stale = [`upstream ${this.mirror.upstream.host} unavailable; serving content your access to was confirmed earlier`];
    if (cachedOnly) {
      if (admission === "stale") return stale;
      throw this.unknown(asked);
    }
    try {
      await this.confirmAccess(await this.upstreamCall(ask));
      return [];
    } catch (err) {
      if (admission === "stale" && isOutage(err)) return stale;
      throw this.translate(err, asked);
    }
  }

  /** The upstream answered for this repository with the requester's credentials (without any: for anyone). */
  private async confirmAccess(provenance: Provenance): Promise<void> {
    const viewer = this.requester.viewer;
    if (viewer) await this.mirror.visibility.confirm(this.upstreamName, viewer, provenance.anonymous);
  }

  /**
   * The blob's size when berth may serve it from its store through this repository now:
   * undefined when it must be fetched from this upstream. The blob must be one this upstream
   * delivered. Shared with every requester (no tenants), that suffices: anyone may read it
   * through the repository it was delivered for. Isolated, it must be linked here (delivered for
   * this repository, or confirmed held here by the upstream with the requester's credentials)
   * and the requester admitted.
   */
  private async stored(digest: Digest, cachedOnly: boolean): Promise<{ size: number; warnings: string[] } | undefined> {
    const size = await this.mirror.storage.blobs.size(digest);
    if (size === undefined) return undefined;
    const asked = { blob: digest };
    const ask = () => this.client.blobSize(this.upstreamName, digest.toString());
    if ((await this.mirror.cache.hasBlob(this.upstreamName, digest)) || (await this.mirror.cache.hasManifest(this.upstreamName, digest))) {
      return { size, warnings: await this.admit(asked, cachedOnly, ask) };
    }
    if (!(await this.mirror.delivered.has(digest))) return undefined;
    if (!this.requester.viewer) return { size, warnings: [] };
    if (cachedOnly) return undefined;
    try {
      await this.confirmAccess(await this.upstreamCall(ask));
    } catch (err) {
      throw this.translate(err, asked);
    }
    await this.linkBlob(digest);
    return { size, warnings: [] };
  }

  async holdsBlob(digest: Digest): Promise<boolean> {
    try {
      return (await this.stored(digest, this.policy === "Never")) !== undefined;
    } catch (err) {
      if (err instanceof RegistryError && err.status < 500) return false;
      throw err;
    }
  }

  async statBlob(digest: Digest): Promise<BlobInfo> {
    const asked = { blob: digest };
    const stored = await this.stored(digest, this.policy === "Never");
    if (stored) return { size: stored.size, cached: true };
    const fill = this.mirror.fills.get(digest, this.backoffKey);
    if (fill) {
      await this.admit(asked, false, () => this.client.blobSize(this.upstreamName, digest.toString()));
      await fill.sized;
      if (fill.size !== undefined) return { size: fill.size, cached: false };
    }
    this.refuseWhenOffline(asked);
    const upstream = await this.upstreamCall(() => this.client.blobSize(this.upstreamName, digest.toString())).catch((err: unknown) => {
      throw this.translate(err, asked);
    });
    await this.confirmAccess(upstream);
    if (upstream.size !== undefined) return { size: upstream.size, cached: false };
    const started = this.startFill(digest);
    await started.finished;
    if (started.size === undefined) throw this.translate(started.error, asked);
    return { size: started.size, cached: false };
  }

  async openBlob(digest: Digest, range?: ByteRange): Promise<BlobContent> {
    const asked = { blob: digest };
    const stored = await this.stored(digest, this.policy === "Never");
    if (stored) {
      const opened = await this.mirror.storage.blobs.open(digest, range);
      if (opened) {
        this.mirror.meter.cacheHit("blob");
        return { ...opened, cached: true, warnings: stored.warnings };
      }
    }
    this.refuseWhenOffline(asked);
    if (this.mirror.fills.get(digest, this.backoffKey)) await this.admit(asked, false, () => this.client.blobSize(this.upstreamName, digest.toString()));
    const fill = this.startFill(digest);
    // Verified bytes from this upstream for this repository, being stored: no fetch, but not stored yet either.
    if (fill.state === "verified" || fill.state === "stored") this.mirror.meter.cacheHit("blob");
    else this.mirror.meter.cacheMiss("blob");
    await fill.sized;
    if (fill.size === undefined) await fill.finished;
    if (fill.state === "failed" || fill.size === undefined) throw this.translate(fill.error, asked);
    return { size: fill.size, cached: false, stream: await fill.open(range) };
  }

  /** Fetches the blob from this upstream repository, or joins that fetch in flight. */
  private startFill(digest: Digest) {
    const waiting = this.mirror.backoff.remaining(this.backoffKey);
    if (waiting > 0) throw this.unavailable(waiting);
    let headersArrived = false;
    const asked = { blob: digest };
    const joined = this.mirror.fills.join(digest, this.backoffKey, {
      admit: async () => {
        await this.admit(asked, false, () => this.client.blobSize(this.upstreamName, digest.toString()));
      },
      stored: async () => (await this.mirror.cache.hasBlob(this.upstreamName, digest)) && (await this.mirror.storage.blobs.size(digest)) !== undefined,
      fetch: async () => {
        const blob = await this.upstreamCall(() => this.client.blob(this.upstreamName, digest.toString()));
        headersArrived = true;
        await this.confirmAccess(blob);
        return blob;
      },
      // Linked first: a request meanwhile finds the link, or still the fill, never only the delivery.
      onStored: async () => {
        await this.linkBlob(digest);
        await this.mirror.delivered.record(digest);
      },
      onFailed: (err) => {
        if (headersArrived && err instanceof UpstreamError && err.isOutage) this.recordOutage(err);
      },
    });
    if (!joined.started && joined.fill.state === "fetching") this.mirror.meter.coalescedWaiter();
    return joined.fill;
  }

  /** This upstream vouched for the blob in this repository. */
  private async linkBlob(digest: Digest): Promise<void> {
    await this.mirror.cache.linkBlob(this.upstreamName, digest);
    await this.mirror.storage.holders.add(digest, `${this.mirror.upstream.prefix}/${this.upstreamName}`);
  }

  /** Tags are listed per requester: another tenant's answer, or what berth cached for it, is not theirs to see. */
  async tags(): Promise<string[]> {
    const key = `${this.requester.viewer ?? ""} ${this.backoffKey}`;
    const cached = await this.mirror.tagLists.get(key);
    if (cached) return cached;
    if (this.policy !== "Never") {
      try {
        const listed = await this.upstreamCall(() => this.client.tags(this.upstreamName));
        await this.confirmAccess(listed);
        const tags = listed.tags.sort();
        await this.mirror.tagLists.set(key, tags);
        return tags;
      } catch (err) {
        if (!isOutage(err)) throw this.translate(err);
        // Offline, berth lists the tags it cached only to a requester it may show them to.
        if (!(await this.mayShowCached())) throw this.translate(err);
      }
    } else if (!(await this.mayShowCached())) {
      throw this.unknown(undefined);
    }
    const local = await this.mirror.cache.tags(this.upstreamName);
    if (local.length === 0) throw this.unknown(undefined);
    return local;
  }

  private async mayShowCached(): Promise<boolean> {
    const viewer = this.requester.viewer;
    return !viewer || (await this.mirror.visibility.admission(this.upstreamName, viewer)) !== "unconfirmed";
  }

  async referrers(subject: Digest): Promise<Descriptor[]> {
    if (this.policy === "Never") return [];
    try {
      const answer = await this.upstreamCall(() => this.client.referrers(this.upstreamName, subject.toString()));
      await this.confirmAccess(answer);
      return answer.manifests;
    } catch (err) {
      if (err instanceof UpstreamError && err.failure === "not-found") return [];
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
  private refuseWhenOffline(asked: Asked): void {
    if (this.policy !== "Never") return;
    const detail = `not cached, and ${this.mirror.upstream.host} has tagPolicy Never`;
    if (asked.blob) throw new RegistryError("BLOB_UNKNOWN", `blob unknown to registry: ${detail}`, { digest: asked.blob.toString() });
    throw new RegistryError("MANIFEST_UNKNOWN", `manifest unknown to registry: ${detail}`, { reference: asked.reference.tag ?? asked.reference.digest.toString() });
  }

  /** Not found, naming only what was asked (nothing: the repository). */
  private unknown(asked: Asked | undefined): RegistryError {
    if (asked?.blob) return blobUnknown(asked.blob);
    if (asked?.reference) return manifestUnknown(asked.reference);
    return new RegistryError("NAME_UNKNOWN", undefined, { name: this.name });
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
  private translate(err: unknown, asked?: Asked): RegistryError {
    if (!(err instanceof UpstreamError)) return asRegistryError(err);
    switch (err.failure) {
      case "not-found":
        return this.unknown(asked);
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
      case "invalid":
        this.mirror.log.error({ upstream: this.mirror.upstream.host, err: err.message }, "upstream gave an answer berth refuses");
        return new RegistryError("UNKNOWN", `upstream ${this.mirror.upstream.host} gave an answer berth refuses: ${err.options.reason}`, undefined, { status: 502 });
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
