import type { Readable } from "node:stream";
import { Digest } from "../reference/digest.js";
import { DigestMismatchError } from "../storage/blob-store.js";
import { SizeLimitError } from "../storage/size-limit-error.js";
import type { ByteRange } from "../storage/driver.js";
import type { Descriptor } from "../storage/repository-metadata.js";
import type { Storage } from "../storage/storage.js";
import { UploadInterruptedError, UploadOffsetError, UploadUnknownError, type UploadSession } from "../storage/uploads.js";
import { RegistryError } from "./errors.js";
import { distinctReferences, MAX_MANIFEST_BYTES, manifestTooLarge, parseManifest } from "./manifest.js";
import type { BlobContent, BlobInfo, ManifestContent, ManifestReference, PutManifestResult, Repository } from "./registry.js";

/** A repository owned by berth: pushed to and pulled from, stored in the local store. */
export class HostedRepository implements Repository {
  constructor(
    readonly name: string,
    private readonly storage: Storage,
  ) {}

  private get metadata() {
    return this.storage.metadata;
  }

  async getManifest(reference: ManifestReference): Promise<ManifestContent> {
    const digest = await this.resolve(reference);
    const record = await this.metadata.manifest(this.name, digest);
    if (!record) throw manifestUnknown(reference);
    const bytes = await this.storage.blobs.read(digest);
    if (!bytes) throw manifestUnknown(reference);
    return { digest, mediaType: record.mediaType, bytes };
  }

  async putManifest(reference: ManifestReference | undefined, contentType: string | undefined, bytes: Buffer, extraTags: readonly string[] = []): Promise<PutManifestResult> {
    if (bytes.length > MAX_MANIFEST_BYTES) throw manifestTooLarge();
    const manifest = parseManifest(bytes, contentType);
    const digest = Digest.of(reference?.digest?.algorithm ?? "sha256", bytes);
    if (reference?.digest && !reference.digest.equals(digest)) {
      throw new RegistryError("DIGEST_INVALID", `manifest hashes to ${digest}, not ${reference.digest}`);
    }
    const references = distinctReferences(manifest);
    for (const blob of references.blobs) {
      if (!(await this.metadata.hasBlob(this.name, blob))) {
        throw new RegistryError("MANIFEST_BLOB_UNKNOWN", `blob ${blob} is not in ${this.name}`, { digest: blob.toString() });
      }
    }
    for (const child of references.manifests) {
      if (!(await this.metadata.manifest(this.name, child))) {
        throw new RegistryError("MANIFEST_BLOB_UNKNOWN", `manifest ${child} is not in ${this.name}`, { digest: child.toString() });
      }
    }
    await this.storage.blobs.ingestBuffer(bytes, digest);
    await this.metadata.linkManifest(this.name, digest, { mediaType: manifest.mediaType, size: bytes.length });
    if (manifest.subject) {
      const referrer: Descriptor = { mediaType: manifest.mediaType, digest: digest.toString(), size: bytes.length };
      if (manifest.artifactType) referrer.artifactType = manifest.artifactType;
      if (manifest.annotations) referrer.annotations = manifest.annotations;
      await this.metadata.addReferrer(this.name, manifest.subject, referrer);
    }
    const tags = [...new Set(reference?.tag ? [reference.tag, ...extraTags] : extraTags)];
    await this.metadata.setTags(this.name, tags, digest);
    return { digest, subject: manifest.subject, tags };
  }

  async deleteManifest(reference: ManifestReference): Promise<void> {
    if (reference.tag !== undefined) {
      if (!(await this.metadata.deleteTag(this.name, reference.tag))) throw manifestUnknown(reference);
      return;
    }
    const digest = reference.digest;
    if (!(await this.metadata.manifest(this.name, digest))) throw manifestUnknown(reference);
    const bytes = await this.storage.blobs.read(digest);
    const subject = bytes && subjectOf(bytes);
    if (subject) await this.metadata.removeReferrer(this.name, subject, digest);
    for (const tag of await this.metadata.tags(this.name)) {
      if ((await this.metadata.tag(this.name, tag))?.equals(digest)) await this.metadata.deleteTag(this.name, tag);
    }
    await this.metadata.unlinkManifest(this.name, digest);
  }

  async statBlob(digest: Digest): Promise<BlobInfo> {
    if (!(await this.holdsLink(digest))) throw blobUnknown(digest);
    const size = await this.storage.blobs.size(digest);
    if (size === undefined) throw blobUnknown(digest);
    return { size, cached: true };
  }

  async openBlob(digest: Digest, range?: ByteRange): Promise<BlobContent> {
    if (!(await this.holdsLink(digest))) throw blobUnknown(digest);
    const opened = await this.storage.blobs.open(digest, range);
    if (!opened) throw blobUnknown(digest);
    return { ...opened, cached: true };
  }

  async deleteBlob(digest: Digest): Promise<void> {
    if (!(await this.metadata.hasBlob(this.name, digest))) throw blobUnknown(digest);
    await this.metadata.unlinkBlob(this.name, digest);
  }

  async tags(): Promise<string[]> {
    if (!(await this.metadata.exists(this.name))) throw new RegistryError("NAME_UNKNOWN", undefined, { name: this.name });
    return this.metadata.tags(this.name);
  }

  async referrers(subject: Digest): Promise<Descriptor[]> {
    return this.metadata.referrers(this.name, subject);
  }

  async startUpload(): Promise<UploadSession> {
    return this.storage.uploads.create(this.name);
  }

  async upload(id: string): Promise<UploadSession> {
    const session = await this.storage.uploads.get(id);
    if (!session || session.repository !== this.name) throw uploadUnknown(id);
    return session;
  }

  async appendUpload(id: string, offset: number | undefined, body: Readable): Promise<UploadSession> {
    await this.upload(id);
    return translateUploadErrors(id, () => this.storage.uploads.append(id, offset, body));
  }

  async completeUpload(id: string, digest: Digest, body?: Readable): Promise<number> {
    await this.upload(id);
    const session = await translateUploadErrors(id, async () => {
      try {
        return await this.storage.uploads.complete(id, digest, body);
      } catch (err) {
        // As Distribution does: content that failed verification is dropped, not kept for a retry.
        if (err instanceof DigestMismatchError) await this.storage.uploads.cancel(id);
        throw err;
      }
    });
    await this.link(digest);
    return (await this.storage.blobs.size(digest)) ?? session.size;
  }

  async cancelUpload(id: string): Promise<void> {
    await this.upload(id);
    await this.storage.uploads.cancel(id);
  }

  async holdsBlob(digest: Digest): Promise<boolean> {
    return (await this.holdsLink(digest)) && (await this.storage.blobs.size(digest)) !== undefined;
  }

  /** Links a blob `from` can serve from berth's store to this requester: a mirror that only knows of it, or heard of it from another upstream, cannot. */
  async mountBlob(digest: Digest, from: Repository): Promise<boolean> {
    if (!(await from.holdsBlob(digest)) || (await this.storage.blobs.size(digest)) === undefined) return false;
    await this.link(digest);
    return true;
  }

  private async link(digest: Digest): Promise<void> {
    await this.metadata.linkBlob(this.name, digest);
    await this.storage.holders.add(digest, this.name);
  }

  private async resolve(reference: ManifestReference): Promise<Digest> {
    if (reference.digest) return reference.digest;
    const digest = await this.metadata.tag(this.name, reference.tag);
    if (!digest) throw manifestUnknown(reference);
    return digest;
  }

  /** Layers are linked on upload; manifests may be fetched through the blobs route too. */
  private async holdsLink(digest: Digest): Promise<boolean> {
    return (await this.metadata.hasBlob(this.name, digest)) || (await this.metadata.manifest(this.name, digest)) !== undefined;
  }
}

function subjectOf(bytes: Buffer): Digest | undefined {
  try {
    const digest = (JSON.parse(bytes.toString("utf8")) as { subject?: { digest?: string } }).subject?.digest;
    return digest ? Digest.parse(digest) : undefined;
  } catch {
    return undefined;
  }
}

async function translateUploadErrors<T>(id: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof UploadUnknownError) throw uploadUnknown(id);
    if (err instanceof UploadOffsetError) {
      throw new RegistryError("RANGE_INVALID", `upload ${id} continues at byte ${err.size}`, undefined, { headers: { Range: rangeHeader(err.size) } });
    }
    // Mostly told to no one (the client is gone), but logged as the client's failure, not berth's.
    if (err instanceof UploadInterruptedError) {
      throw new RegistryError("BLOB_UPLOAD_INVALID", `chunk cut off; upload ${id} continues at byte ${err.size}`, undefined, { headers: { Range: rangeHeader(err.size) } });
    }
    if (err instanceof DigestMismatchError) throw new RegistryError("DIGEST_INVALID", err.message, { expected: err.expected.toString() });
    if (err instanceof SizeLimitError) throw new RegistryError("SIZE_INVALID", err.message);
    throw err;
  }
}

function rangeHeader(size: number): string {
  return size === 0 ? "0-0" : `0-${size - 1}`;
}

export function manifestUnknown(reference: ManifestReference): RegistryError {
  return new RegistryError("MANIFEST_UNKNOWN", undefined, { reference: reference.tag ?? reference.digest.toString() });
}

export function blobUnknown(digest: Digest): RegistryError {
  return new RegistryError("BLOB_UNKNOWN", undefined, { digest: digest.toString() });
}

function uploadUnknown(id: string): RegistryError {
  return new RegistryError("BLOB_UPLOAD_UNKNOWN", undefined, { uuid: id });
}
