import type { Digest } from "../reference/digest.js";
import type { ManifestContent } from "./registry.js";

/** Memory the kept manifests may take, in bytes. */
const DEFAULT_BUDGET = 16 * 1024 * 1024;

/**
 * Manifests a mirror served lately, by repository and digest: verified content that never
 * changes, kept so that a warm manifest request costs one stat (is it still linked?) rather
 * than reading its link record and its bytes. The least recently used go first.
 */
export class RecentManifests {
  private readonly entries = new Map<string, ManifestContent>();
  private bytes = 0;

  constructor(private readonly budget = DEFAULT_BUDGET) {}

  get(repository: string, digest: Digest): ManifestContent | undefined {
    const key = keyOf(repository, digest);
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  remember(repository: string, manifest: ManifestContent): void {
    if (manifest.bytes.length > this.budget / 16) return;
    this.forget(repository, manifest.digest);
    this.entries.set(keyOf(repository, manifest.digest), { digest: manifest.digest, mediaType: manifest.mediaType, bytes: manifest.bytes });
    this.bytes += manifest.bytes.length;
    for (const [key, oldest] of this.entries) {
      if (this.bytes <= this.budget) break;
      this.entries.delete(key);
      this.bytes -= oldest.bytes.length;
    }
  }

  forget(repository: string, digest: Digest): void {
    const key = keyOf(repository, digest);
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes.length;
  }
}

function keyOf(repository: string, digest: Digest): string {
  return `${repository}@${digest}`;
}
