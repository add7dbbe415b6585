import type { Readable } from "node:stream";
import type { Digest } from "../reference/digest.js";
import type { ByteRange, ObjectStream } from "../storage/driver.js";
import type { Descriptor } from "../storage/repository-metadata.js";
import type { UploadSession } from "../storage/uploads.js";

/** A manifest reference as a client sent it: a tag, or a digest that pins content. */
export type ManifestReference = { tag: string; digest?: undefined } | { digest: Digest; tag?: undefined };

export interface ManifestContent {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  /** Notes for the client about how this answer was produced (sent as `Warning` headers). */
  warnings?: string[];
  /** Extra response headers, e.g. which fallback produced the manifest. */
  headers?: Record<string, string>;
}

export interface ManifestRequest {
  /** Media types the client accepts, in its order; empty means anything. */
  accept: string[];
  /** Answer only from what berth holds, asking no upstream (the -$(ARCH) fallback while an upstream is down). */
  cachedOnly?: boolean;
  /**
   * For a tag: the oldest answer the client takes, in ms (its `Cache-Control: max-age`; 0 for
   * `no-cache`). A mirror whose tag record is older asks its upstream, whatever its own tag policy
   * would allow, except under `Never`. A node tier sends its own tag policy this way.
   */
  maxAgeMs?: number;
}

/** What a repository says of a blob it can serve. */
export interface BlobInfo {
  /** Size of the whole blob. */
  size: number;
  /**
   * Served from this repository's copy already in berth's store (a hosted blob always is), not
   * from a fetch still being stored: the `Berth-Cache` header of a successful answer.
   */
  cached: boolean;
}

export interface BlobContent extends BlobInfo {
  /** The requested range, or the whole blob. */
  stream: ObjectStream;
  warnings?: string[];
}

export interface PutManifestResult {
  digest: Digest;
  subject?: Digest;
  /** The tags now pointing at the manifest: the reference's own and the extra ones asked for. */
  tags: string[];
}

/** Where a request was addressed: the repository name, and the upstream named by `?ns=`. */
export interface RepositoryAddress {
  name: string;
  namespace?: string;
  /** Writes go to hosted repositories even when a default upstream is configured. */
  intent?: "read" | "write";
}

/** The authorized principal of a request, as far as repositories need to know it. */
export interface RequestedBy {
  subject: string;
  tenant?: string;
  /**
   * Whether policy lets the principal pull the repository with this policy name: a repository
   * that reads another on its behalf (the -$(ARCH) fallbacks) asks before it does.
   */
  mayPull(policyName: string): boolean;
}

/**
 * Where an address leads, before anyone is let in: the name policy decides on, and how to
 * open the repository for whom the request then acts.
 */
export interface RepositoryRoute {
  /**
   * The one name policy, token scopes and visibility use: `PREFIX/REPO` for a mirrored
   * repository (whether `?ns=`, the path prefix or the default upstream led there), the name
   * itself for a hosted one. It never changes with the route a request took.
   */
  readonly policyName: string;
  /**
   * The names a token's scope may give this repository, the policy name among them: clients
   * ask for the path they request (containerd's `?ns=` repository, skopeo's path), and which
   * names these are never depends on what berth stores (no hosted name is given away).
   */
  readonly scopeNames: readonly string[];
  open(requestedBy?: RequestedBy): Promise<Repository>;
}

/**
 * One repository, hosted or mirrored: the HTTP layer serves both through this interface
 * and never learns which it is talking to.
 */
export interface Repository {
  /** The name as addressed by the client. */
  readonly name: string;
  getManifest(reference: ManifestReference, request: ManifestRequest): Promise<ManifestContent>;
  /** Stores a manifest once and points the reference's tag and `tags` at it: every tag, or none. */
  putManifest(reference: ManifestReference | undefined, contentType: string | undefined, bytes: Buffer, tags?: readonly string[]): Promise<PutManifestResult>;
  deleteManifest(reference: ManifestReference): Promise<void>;
  /** Size of a blob the repository can serve. */
  statBlob(digest: Digest): Promise<BlobInfo>;
  openBlob(digest: Digest, range?: ByteRange): Promise<BlobContent>;
  deleteBlob(digest: Digest): Promise<void>;
  /** All tags in lexical order. */
  tags(): Promise<string[]>;
  referrers(subject: Digest): Promise<Descriptor[]>;

  startUpload(): Promise<UploadSession>;
  upload(id: string): Promise<UploadSession>;
  appendUpload(id: string, offset: number | undefined, body: Readable): Promise<UploadSession>;
  /** Appends a final chunk (if any), verifies the digest and stores the blob. */
  completeUpload(id: string, digest: Digest, body?: Readable): Promise<number>;
  cancelUpload(id: string): Promise<void>;
  /**
   * Whether the repository can serve this blob from berth's store to whom it was opened for,
   * now, without fetching it: what a mount may copy from.
   */
  holdsBlob(digest: Digest): Promise<boolean>;
  /** Links a blob that `from` holds (see holdsBlob) into this repository; false if it cannot. */
  mountBlob(digest: Digest, from: Repository): Promise<boolean>;
}

export interface Registry {
  route(address: RepositoryAddress): Promise<RepositoryRoute>;
  /**
   * Policy names of repositories that linked the blob, newest last: where a mount without
   * `from` looks. A hint: each must still be opened and asked (Repository.holdsBlob).
   */
  repositoriesHolding(digest: Digest): Promise<string[]>;
  /** Hosted repositories in lexical order. */
  catalog(): Promise<string[]>;
}

/** The repository an address reaches, opened for `requestedBy`. Callers serving a client authorize it on the route's policy name first. */
export async function openRepository(registry: Registry, address: RepositoryAddress, requestedBy?: RequestedBy): Promise<Repository> {
  return (await registry.route(address)).open(requestedBy);
}
