import type { Readable } from "node:stream";
import { Digest } from "../reference/digest.js";
import type { BlobStore } from "../storage/blob-store.js";
import type { SynthesizedIndexes } from "../storage/synthesized-indexes.js";
import type { ByteRange } from "../storage/driver.js";
import type { Descriptor } from "../storage/repository-metadata.js";
import type { UploadSession } from "../storage/uploads.js";
import { RegistryError, UpstreamDeniedError } from "./errors.js";
import { DOCKER_MANIFEST_LIST, isIndexType, OCI_INDEX } from "./media-types.js";
import { formatPlatform, selectPlatform, type Platform } from "./platform.js";
import { ProxyRepository } from "./proxy.js";
import type {
  BlobContent,
  BlobInfo,
  ManifestContent,
  ManifestReference,
  ManifestRequest,
  PutManifestResult,
  Registry,
  Repository,
  RepositoryAddress,
  RepositoryRoute,
  RequestedBy,
} from "./registry.js";

export const SYNTHESIZED_ANNOTATION = "berth.synthesized";
const SYNTHESIZED_REPOSITORY_ANNOTATION = "berth.synthesized.repository";
export const FALLBACK_HEADER = "Berth-Fallback";
export const PLATFORM_HEADER = "Berth-Platform";

export interface PlatformOptions {
  /** The platform served to clients that cannot take an index. */
  defaultPlatform: Platform;
  /** Architectures probed for `-$(ARCH)` fallbacks, per repository; empty turns fallbacks off. */
  fallbackArchitectures: (repository: Repository) => readonly string[];
  /**
   * Whether the repository's upstream bridges `-$(ARCH)` names itself (a parent tier): then only
   * the name asked goes upstream, and the fallbacks answer from the cache while it is down.
   */
  upstreamBridges: (repository: Repository) => boolean;
  /** Where synthesized indexes are kept, so they can be fetched again by digest. */
  blobs: BlobStore;
  /** Which indexes berth synthesized, for which repository. */
  synthesized: SynthesizedIndexes;
}

/**
 * Wraps a registry with what multi-arch clients need (docs/design.md §4): an index reaches only
 * clients that accept one, others get their platform's manifest; `name-<arch>:tag` falls
 * back to the `<arch>` entry of `name:tag`'s index, and `name:tag` to an index synthesized
 * from per-architecture `name-<arch>:tag` tags.
 */
export class PlatformRegistry implements Registry {
  private readonly synthesizedFrom = new SynthesisMemory();

  constructor(
    private readonly inner: Registry,
    private readonly options: PlatformOptions,
  ) {}

  async route(address: RepositoryAddress): Promise<RepositoryRoute> {
    const inner = await this.inner.route(address);
    return {
      policyName: inner.policyName,
      scopeNames: inner.scopeNames,
      open: async (requestedBy) => {
        const repository = await inner.open(requestedBy);
        const architectures = this.options.fallbackArchitectures(repository);
        const bridged = this.options.upstreamBridges(repository);
        return new PlatformRepository(address, requestedBy, repository, this.inner, architectures, bridged, this.options, this.synthesizedFrom);
      },
    };
  }

  catalog(): Promise<string[]> {
    return this.inner.catalog();
  }

  repositoriesHolding(digest: Digest): Promise<string[]> {
    return this.inner.repositoriesHolding(digest);
  }
}

class PlatformRepository implements Repository {
  constructor(
    private readonly address: RepositoryAddress,
    private readonly requestedBy: RequestedBy | undefined,
    private readonly inner: Repository,
    private readonly registry: Registry,
    private readonly architectures: readonly string[],
    /** The upstream bridges `-$(ARCH)` names itself: ask it only for the name asked; bridge manifests from the cache while it is down. */
    private readonly bridged: boolean,
    private readonly options: PlatformOptions,
    private readonly synthesizedFrom: SynthesisMemory,
  ) {}

  get name(): string {
    return this.inner.name;
  }

  async getManifest(reference: ManifestReference, request: ManifestRequest): Promise<ManifestContent> {
    const manifest = await this.withFallback(
      () => this.inner.getManifest(reference, request),
      () => this.fallbackManifest(reference, { accept: [], ...(request.maxAgeMs === undefined ? {} : { maxAgeMs: request.maxAgeMs }) }),
      () => this.cachedFallbackManifest(reference),
    );
    // A digest pins content: `name@<index digest>` is that index for every client, as in Distribution.
    return reference.tag === undefined ? manifest : this.negotiate(manifest, request);
  }

  async statBlob(digest: Digest): Promise<BlobInfo> {
    const fromRelatives = () => this.fromRelatives((r) => r.statBlob(digest));
    return this.withFallback(() => this.inner.statBlob(digest), fromRelatives, this.bridged ? undefined : fromRelatives);
  }

  async openBlob(digest: Digest, range?: ByteRange): Promise<BlobContent> {
    const fromRelatives = () => this.fromRelatives((r) => r.openBlob(digest, range));
    return this.withFallback(() => this.inner.openBlob(digest, range), fromRelatives, this.bridged ? undefined : fromRelatives);
  }

  /** Serves a tag's index only to clients that accept one; others get their platform's manifest. */
  private async negotiate(manifest: ManifestContent, request: ManifestRequest): Promise<ManifestContent> {
    if (!isIndexType(manifest.mediaType) || acceptsIndex(request.accept, manifest.mediaType)) return manifest;
    const wanted = this.options.defaultPlatform;
    const entry = selectPlatform(indexEntries(manifest.bytes), wanted);
    if (!entry) {
      throw new RegistryError("MANIFEST_UNKNOWN", `the index has no ${formatPlatform(wanted)} manifest, and the client does not accept an index`, {
        digest: manifest.digest.toString(),
      });
    }
    const child = await this.getManifest({ digest: Digest.parse(entry.digest)! }, { accept: [] });
    return {
      ...child,
      warnings: [...(manifest.warnings ?? []), ...(child.warnings ?? [])],
      headers: { ...manifest.headers, ...child.headers, [PLATFORM_HEADER]: formatPlatform(wanted) },
    };
  }

  /**
   * Runs `primary`; when it finds nothing and fallbacks are on, `fallback` gets a chance (unless
   * the upstream bridged already), and `whenDown` (if given) when the upstream cannot answer.
   * When the fallback finds nothing either, the client gets `primary`'s own answer.
   */
  private async withFallback<T>(primary: () => Promise<T>, fallback: () => Promise<T | undefined>, whenDown?: () => Promise<T | undefined>): Promise<T> {
    try {
      return await primary();
    } catch (err) {
      if (this.architectures.length === 0) throw err;
      const found = isAbsent(err) && !this.bridged ? await fallback() : whenDown && isOutage(err) ? await whenDown() : undefined;
      if (found === undefined) throw err;
      return found;
    }
  }

  /**
   * While the upstream is down, a name only a fallback ever answered has nothing cached under
   * its own name: answer it from what the fallback cached, asking the upstream nothing more.
   */
  private async cachedFallbackManifest(reference: ManifestReference): Promise<ManifestContent | undefined> {
    const found = await this.fallbackManifest(reference, { accept: [], cachedOnly: true });
    return found && { ...found, warnings: [...(found.warnings ?? []), "upstream unavailable; answered from cached content through the -$(ARCH) fallback"] };
  }

  /** `related` is how the related repositories are asked. */
  private async fallbackManifest(reference: ManifestReference, related: ManifestRequest): Promise<ManifestContent | undefined> {
    const suffixed = this.splitArchitecture();
    if (suffixed) return this.fromIndexEntry(suffixed.base, suffixed.architecture, reference, related);
    if (reference.tag !== undefined) return this.synthesizeIndex(reference.tag, related);
    return (await this.synthesizedByDigest(reference.digest)) ?? this.fromRelatives((r) => r.getManifest(reference, related));
  }

  /** `name-<arch>:tag` → the `<arch>` entry of `name:tag`'s index. */
  private async fromIndexEntry(base: string, architecture: string, reference: ManifestReference, request: ManifestRequest): Promise<ManifestContent | undefined> {
    const baseRepository = await this.sibling(base);
    if (!baseRepository) return undefined;
    const from = `${base}${reference.tag !== undefined ? `:${reference.tag}` : `@${reference.digest}`}`;
    const found = await optional(() => baseRepository.getManifest(reference, request));
    if (!found) return undefined;
    if (reference.digest) return { ...found, headers: { ...found.headers, [FALLBACK_HEADER]: `base-repository; from=${from}` } };
    if (!isIndexType(found.mediaType)) return undefined;
    const entry = selectPlatform(indexEntries(found.bytes), { os: "linux", architecture });
    if (!entry) return undefined;
    const child = await optional(() => baseRepository.getManifest({ digest: Digest.parse(entry.digest)! }, request));
    return child && { ...child, headers: { ...child.headers, [FALLBACK_HEADER]: `index-entry; from=${from}` } };
  }

  /**
   * `name:tag` missing → an index of the per-architecture `name-<arch>:tag` manifests. Asked
   * for cached content only, it finds the tags it found when the upstream was up: the same index.
   */
  private async synthesizeIndex(tag: string, request: ManifestRequest): Promise<ManifestContent | undefined> {
    const entries: Descriptor[] = [];
    const sources: string[] = [];
    const found: string[] = [];
    for (const architecture of this.architectures) {
      const sibling = await this.sibling(`${this.name}-${architecture}`);
      if (!sibling) continue;
      const manifest = await optional(() => sibling.getManifest({ tag }, request));
      if (!manifest) continue;
      const entry = await this.entryFor(sibling, manifest, architecture);
      if (!entry) continue;
      entries.push(entry);
      found.push(architecture);
      sources.push(`${canonicalName(sibling)}:${tag}`);
    }
    if (entries.length === 0) return undefined;
    this.synthesizedFrom.remember(canonicalName(this.inner), found);
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: entries,
      annotations: {
        [SYNTHESIZED_ANNOTATION]: `index synthesized by berth from ${sources.join(", ")}`,
        [SYNTHESIZED_REPOSITORY_ANNOTATION]: canonicalName(this.inner),
      },
    };
    const bytes = Buffer.from(JSON.stringify(index));
    const digest = await this.options.blobs.ingestBuffer(bytes);
    await this.options.synthesized.record(digest, canonicalName(this.inner));
    return { digest, mediaType: OCI_INDEX, bytes, headers: { [FALLBACK_HEADER]: `synthesized-index; from=${sources.join(",")}` } };
  }

  /** The descriptor of one per-architecture manifest, with its platform from its config. */
  private async entryFor(sibling: Repository, manifest: ManifestContent, architecture: string): Promise<Descriptor | undefined> {
    if (isIndexType(manifest.mediaType)) {
      const entry = selectPlatform(indexEntries(manifest.bytes), { os: "linux", architecture });
      return entry && { mediaType: entry.mediaType, digest: entry.digest, size: entry.size, platform: entry.platform };
    }
    const platform = (await this.configPlatform(sibling, manifest)) ?? { os: "linux", architecture };
    return { mediaType: manifest.mediaType, digest: manifest.digest.toString(), size: manifest.bytes.length, platform: { ...platform } };
  }

  private async configPlatform(sibling: Repository, manifest: ManifestContent): Promise<Platform | undefined> {
    try {
      const config = (JSON.parse(manifest.bytes.toString("utf8")) as { config?: { digest?: string; size?: number } }).config;
      const digest = config?.digest ? Digest.parse(config.digest) : undefined;
      const size = config?.size;
      if (!digest || size === undefined || size > 1024 * 1024) return undefined;
      const blob = await sibling.openBlob(digest);
      const parsed = JSON.parse((await readAtMost(blob.stream, size)).toString("utf8")) as { os?: unknown; architecture?: unknown; variant?: unknown };
      if (typeof parsed.os !== "string" || typeof parsed.architecture !== "string") return undefined;
      return { os: parsed.os, architecture: parsed.architecture, ...(typeof parsed.variant === "string" ? { variant: parsed.variant } : {}) };
    } catch {
      return undefined;
    }
  }

  /** A synthesized index is fetched again by digest (containerd resolves, then GETs by digest). */
  private async synthesizedByDigest(digest: Digest): Promise<ManifestContent | undefined> {
    if ((await this.options.synthesized.repositoryOf(digest)) !== canonicalName(this.inner)) return undefined;
    const bytes = await this.options.blobs.read(digest);
    if (!bytes) return undefined;
    return { digest, mediaType: OCI_INDEX, bytes, headers: { [FALLBACK_HEADER]: "synthesized-index" } };
  }

  /**
   * The first answer from the related repositories: the base of `name-<arch>`, or the
   * `name-<arch>` repositories an index of `name` was synthesized from. Only those: probing
   * every architecture on every miss would multiply upstream requests.
   */
  private async fromRelatives<T>(ask: (repository: Repository) => Promise<T>): Promise<T | undefined> {
    const suffixed = this.splitArchitecture();
    const names = suffixed ? [suffixed.base] : this.synthesizedFrom.architectures(canonicalName(this.inner)).map((a) => `${this.name}-${a}`);
    for (const name of names) {
      const sibling = await this.sibling(name);
      const found = sibling && (await optional(() => ask(sibling)));
      if (found !== undefined) return found;
    }
    return undefined;
  }

  private splitArchitecture(): { base: string; architecture: string } | undefined {
    for (const architecture of this.architectures) {
      const suffix = `-${architecture}`;
      const lastComponent = this.name.slice(this.name.lastIndexOf("/") + 1);
      if (lastComponent.endsWith(suffix) && lastComponent.length > suffix.length) {
        return { base: this.name.slice(0, -suffix.length), architecture };
      }
    }
    return undefined;
  }

  /** A related repository, when the requester may pull it too: a fallback never widens what they may read. */
  private async sibling(name: string): Promise<Repository | undefined> {
    const route = await this.registry.route({ ...this.address, name });
    if (this.requestedBy && !this.requestedBy.mayPull(route.policyName)) return undefined;
    return route.open(this.requestedBy);
  }

  putManifest(reference: ManifestReference | undefined, contentType: string | undefined, bytes: Buffer, tags?: readonly string[]): Promise<PutManifestResult> {
    return this.inner.putManifest(reference, contentType, bytes, tags);
  }
  deleteManifest(reference: ManifestReference): Promise<void> {
    return this.inner.deleteManifest(reference);
  }
  deleteBlob(digest: Digest): Promise<void> {
    return this.inner.deleteBlob(digest);
  }
  tags(): Promise<string[]> {
    return this.inner.tags();
  }
  referrers(subject: Digest): Promise<Descriptor[]> {
    return this.inner.referrers(subject);
  }
  startUpload(): Promise<UploadSession> {
    return this.inner.startUpload();
  }
  upload(id: string): Promise<UploadSession> {
    return this.inner.upload(id);
  }
  appendUpload(id: string, offset: number | undefined, body: Readable): Promise<UploadSession> {
    return this.inner.appendUpload(id, offset, body);
  }
  completeUpload(id: string, digest: Digest, body?: Readable): Promise<number> {
    return this.inner.completeUpload(id, digest, body);
  }
  cancelUpload(id: string): Promise<void> {
    return this.inner.cancelUpload(id);
  }
  holdsBlob(digest: Digest): Promise<boolean> {
    return this.inner.holdsBlob(digest);
  }
  mountBlob(digest: Digest, from: Repository): Promise<boolean> {
    return this.inner.mountBlob(digest, from);
  }
}

/** Which `name-<arch>` repositories an index of `name` was synthesized from, for the most recent names. */
class SynthesisMemory {
  private static readonly LIMIT = 10_000;
  private readonly byName = new Map<string, readonly string[]>();

  remember(name: string, architectures: readonly string[]): void {
    this.byName.delete(name);
    this.byName.set(name, architectures);
    if (this.byName.size > SynthesisMemory.LIMIT) this.byName.delete(this.byName.keys().next().value!);
  }

  architectures(name: string): readonly string[] {
    return this.byName.get(name) ?? [];
  }
}

/**
 * Whether a client's Accept list lets it receive an index: one of `indexType` when given (a
 * docker 17-era client takes a Docker manifest list but cannot parse an OCI index), else either kind.
 */
export function acceptsIndex(accept: string[], indexType?: string): boolean {
  const indexTypes = indexType === undefined ? [OCI_INDEX, DOCKER_MANIFEST_LIST] : [indexType];
  return accept.length === 0 || accept.some((type) => type === "*/*" || indexTypes.includes(type));
}

/**
 * `host/path` at its upstream, however a client addressed it: admission resolves a tag through
 * the prefix, containerd pulls the digest through `?ns=`, and both must meet the same index.
 */
function canonicalName(repository: Repository): string {
  return repository instanceof ProxyRepository ? `${repository.upstream.host}/${repository.upstreamName}` : repository.name;
}

function indexEntries(bytes: Buffer): (Descriptor & { platform?: Partial<Platform> })[] {
  const index = JSON.parse(bytes.toString("utf8")) as { manifests?: (Descriptor & { platform?: Partial<Platform> })[] };
  return Array.isArray(index.manifests) ? index.manifests : [];
}

/**
 * Nothing the requester can get under that name: unknown, or refused by the upstream, which
 * on Docker Hub is also the answer for a repository that does not exist. The fallbacks never
 * serve the refused name's content, only what the requester's own access reaches elsewhere.
 */
function isAbsent(err: unknown): boolean {
  if (err instanceof UpstreamDeniedError) return true;
  return err instanceof RegistryError && (err.code === "MANIFEST_UNKNOWN" || err.code === "BLOB_UNKNOWN" || err.code === "NAME_UNKNOWN");
}

/** The upstream cannot answer now: down, or rate-limiting. */
function isOutage(err: unknown): boolean {
  return err instanceof RegistryError && (err.code === "UNAVAILABLE" || err.code === "TOOMANYREQUESTS");
}

/** The answer, or undefined when the repository does not have it for the requester. */
async function optional<T>(ask: () => Promise<T>): Promise<T | undefined> {
  try {
    return await ask();
  } catch (err) {
    if (isAbsent(err)) return undefined;
    throw err;
  }
}

/** The stream's bytes, as long as there are no more than `limit` (a hostile upstream's config may be anything). */
async function readAtMost(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > limit) throw new Error(`more than the ${limit} bytes its descriptor declares`);
      chunks.push(chunk);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}
