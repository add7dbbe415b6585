import { finished } from "node:stream/promises";
import { Digest } from "../reference/digest.js";
import type { PendingObject, StorageDriver } from "./driver.js";

/** What a repository records about a manifest it holds. */
export interface ManifestRecord {
  mediaType: string;
  size: number;
}

/** An OCI descriptor, as the referrers API lists them. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: Record<string, unknown>;
}

/** Where hosted repositories keep their metadata; mirrors keep theirs under `mirrors/<prefix>`. */
export const HOSTED_ROOT = "repositories";

/**
 * Per-repository metadata beside the blob store: which manifests and blobs a repository
 * holds, its tags, and the referrers of its manifests. Each fact is one small object,
 * written atomically, so concurrent writers and crashes never leave a torn record.
 */
export class RepositoryMetadata {
  constructor(
    private readonly driver: StorageDriver,
    private readonly root: string = HOSTED_ROOT,
  ) {}

  private base(repository: string): string {
    return `${this.root}/${repository}`;
  }

  private manifestsPath(repository: string): string {
    return `${this.base(repository)}/_manifests`;
  }

  private manifestPath(repository: string, digest: Digest): string {
    return `${this.manifestsPath(repository)}/${digest.algorithm}/${digest.hex}`;
  }

  private blobsPath(repository: string): string {
    return `${this.base(repository)}/_layers`;
  }

  private blobPath(repository: string, digest: Digest): string {
    return `${this.blobsPath(repository)}/${digest.algorithm}/${digest.hex}`;
  }

  private tagPath(repository: string, tag: string): string {
    return `${this.base(repository)}/_tags/${tag}`;
  }

  private referrersPath(repository: string, subject: Digest): string {
    return `${this.base(repository)}/_referrers/${subject.algorithm}/${subject.hex}`;
  }

  async linkManifest(repository: string, digest: Digest, record: ManifestRecord): Promise<void> {
    await this.driver.writeSmall(this.manifestPath(repository, digest), JSON.stringify(record));
  }

  async manifest(repository: string, digest: Digest): Promise<ManifestRecord | undefined> {
    const data = await this.driver.readSmall(this.manifestPath(repository, digest));
    return data && (JSON.parse(data.toString("utf8")) as ManifestRecord);
  }

  async hasManifest(repository: string, digest: Digest): Promise<boolean> {
    return (await this.driver.stat(this.manifestPath(repository, digest))) !== undefined;
  }

  async unlinkManifest(repository: string, digest: Digest): Promise<void> {
    await this.driver.delete(this.manifestPath(repository, digest));
  }

  async manifests(repository: string): Promise<Digest[]> {
    return this.digestsUnder(this.manifestsPath(repository));
  }

  /** Whether the repository holds any manifest, without listing them all. */
  async hasManifests(repository: string): Promise<boolean> {
    return this.hasDigestsUnder(this.manifestsPath(repository));
  }

  async linkBlob(repository: string, digest: Digest): Promise<void> {
    await this.driver.writeSmall(this.blobPath(repository, digest), "");
  }

  async hasBlob(repository: string, digest: Digest): Promise<boolean> {
    return (await this.driver.stat(this.blobPath(repository, digest))) !== undefined;
  }

  async unlinkBlob(repository: string, digest: Digest): Promise<void> {
    await this.driver.delete(this.blobPath(repository, digest));
  }

  async blobs(repository: string): Promise<Digest[]> {
    return this.digestsUnder(this.blobsPath(repository));
  }

  async setTag(repository: string, tag: string, digest: Digest): Promise<void> {
    await this.driver.writeSmall(this.tagPath(repository, tag), digest.toString());
  }

  /**
   * Points every tag at `digest`, all or none: the new records are all written aside first (a
   * full disk or an I/O error fails there, with no tag moved), then put in place; should one
   * fail to go in place, those already moved are put back as they were.
   */
  async setTags(repository: string, tags: readonly string[], digest: Digest): Promise<void> {
    const pending: { tag: string; object: PendingObject; previous: Digest | undefined }[] = [];
    try {
      for (const tag of tags) {
        const object = await this.driver.createPending();
        pending.push({ tag, object, previous: await this.tag(repository, tag) });
        object.stream.end(digest.toString());
        await finished(object.stream);
      }
      const placed: typeof pending = [];
      try {
        for (const entry of pending) {
          await entry.object.commit(this.tagPath(repository, entry.tag));
          placed.push(entry);
        }
      } catch (err) {
        for (const { tag, previous } of placed) {
          await (previous ? this.setTag(repository, tag, previous) : this.deleteTag(repository, tag));
        }
        throw err;
      }
    } finally {
      await Promise.all(pending.map(({ object }) => object.discard()));
    }
  }

  /** A tag with the time it was last set, which mirrors use as the time it was last validated. */
  async tagRecord(repository: string, tag: string): Promise<{ digest: Digest; updated: Date } | undefined> {
    const path = this.tagPath(repository, tag);
    const [data, info] = await Promise.all([this.driver.readSmall(path), this.driver.stat(path)]);
    const digest = data && Digest.parse(data.toString("utf8").trim());
    return digest && info ? { digest, updated: info.modified } : undefined;
  }

  async tag(repository: string, tag: string): Promise<Digest | undefined> {
    const data = await this.driver.readSmall(this.tagPath(repository, tag));
    return data && Digest.parse(data.toString("utf8").trim());
  }

  async deleteTag(repository: string, tag: string): Promise<boolean> {
    if (!(await this.driver.stat(this.tagPath(repository, tag)))) return false;
    await this.driver.delete(this.tagPath(repository, tag));
    return true;
  }

  /** Tags in lexical order. */
  async tags(repository: string): Promise<string[]> {
    return (await this.driver.list(`${this.base(repository)}/_tags`)).sort(compareLexically);
  }

  async addReferrer(repository: string, subject: Digest, referrer: Descriptor): Promise<void> {
    const digest = Digest.parse(referrer.digest)!;
    await this.driver.writeSmall(`${this.referrersPath(repository, subject)}/${digest.algorithm}-${digest.hex}`, JSON.stringify(referrer));
  }

  async removeReferrer(repository: string, subject: Digest, referrer: Digest): Promise<void> {
    await this.driver.delete(`${this.referrersPath(repository, subject)}/${referrer.algorithm}-${referrer.hex}`);
  }

  async referrers(repository: string, subject: Digest): Promise<Descriptor[]> {
    const dir = this.referrersPath(repository, subject);
    const result: Descriptor[] = [];
    for (const name of (await this.driver.list(dir)).sort()) {
      const data = await this.driver.readSmall(`${dir}/${name}`);
      if (data) result.push(JSON.parse(data.toString("utf8")) as Descriptor);
    }
    return result;
  }

  /** A repository exists while it holds a manifest or a blob; deleting its last one removes it. */
  async exists(repository: string): Promise<boolean> {
    return (await this.hasManifests(repository)) || (await this.hasDigestsUnder(this.blobsPath(repository)));
  }

  /** Repositories that exist, in lexical order. */
  async repositories(): Promise<string[]> {
    const found: string[] = [];
    const walk = async (path: string, name: string): Promise<void> => {
      const children = await this.driver.list(path);
      if (name && (await this.exists(name))) found.push(name);
      for (const child of children) {
        if (!child.startsWith("_")) await walk(`${path}/${child}`, name ? `${name}/${child}` : child);
      }
    };
    await walk(this.root, "");
    return found.sort(compareLexically);
  }

  /**
   * Every manifest and layer link under this root, from one flat walk of the store itself
   * rather than this process's view of it (which misses links other replicas made where it
   * deleted one): collection counts both.
   */
  async *walkLinks(): AsyncGenerator<{ repository: string; kind: "manifest" | "blob"; digest: Digest }> {
    for await (const object of this.driver.walk(this.root)) {
      const segments = object.path.slice(this.root.length + 1).split("/");
      const at = segments.length - 3;
      const kind = segments[at] === "_manifests" ? "manifest" : segments[at] === "_layers" ? "blob" : undefined;
      const digest = kind && at > 0 ? Digest.parse(`${segments[at + 1]}:${segments[at + 2]}`) : undefined;
      if (kind && digest) yield { repository: segments.slice(0, at).join("/"), kind, digest };
    }
  }

  /**
   * Removes the per-digest `_visibility/` records berth kept before a mirror's visibility became
   * one record per repository; returns how many repositories had them. Collection runs it.
   */
  async removeLegacyVisibility(): Promise<number> {
    let removed = 0;
    const walk = async (path: string): Promise<void> => {
      for (const child of await this.driver.list(path)) {
        if (child === "_visibility") {
          await this.driver.delete(`${path}/${child}`);
          removed++;
        } else if (!child.startsWith("_")) await walk(`${path}/${child}`);
      }
    };
    await walk(this.root);
    return removed;
  }

  /** Checks inside each algorithm directory, since deletes can leave one empty. */
  private async hasDigestsUnder(path: string): Promise<boolean> {
    for (const algorithm of await this.driver.list(path)) {
      if (await this.driver.hasAny(`${path}/${algorithm}`)) return true;
    }
    return false;
  }

  private async digestsUnder(path: string): Promise<Digest[]> {
    const result: Digest[] = [];
    for (const algorithm of await this.driver.list(path)) {
      for (const hex of await this.driver.list(`${path}/${algorithm}`)) {
        const digest = Digest.parse(`${algorithm}:${hex}`);
        if (digest) result.push(digest);
      }
    }
    return result;
  }
}

export function compareLexically(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
