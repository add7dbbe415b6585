import { Digest } from "../reference/digest.js";
import { isRepositoryName, isTag } from "../reference/repository-name.js";
import { RegistryError } from "../registry/errors.js";
import type { ManifestReference } from "../registry/registry.js";

/** A `/v2/` request path, parsed and validated. */
export type V2Path =
  | { kind: "base" }
  | { kind: "catalog" }
  /** `reference` is checked per method: reading an impossible reference is a 404, pushing to one a 400. */
  | { kind: "manifest"; name: string; reference: string }
  | { kind: "blob"; name: string; digest: Digest }
  | { kind: "uploads"; name: string }
  | { kind: "upload"; name: string; id: string }
  | { kind: "tags"; name: string }
  | { kind: "referrers"; name: string; digest: Digest };

const ROUTES: [RegExp, (name: string, arg: string) => V2Path][] = [
  [/^\/v2\/(.+)\/manifests\/([^/]+)$/, (name, reference) => ({ kind: "manifest", name, reference })],
  [/^\/v2\/(.+)\/blobs\/uploads\/?$/, (name) => ({ kind: "uploads", name })],
  [/^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, (name, id) => ({ kind: "upload", name, id })],
  [/^\/v2\/(.+)\/blobs\/([^/]+)$/, (name, digest) => ({ kind: "blob", name, digest: parseDigest(digest) })],
  [/^\/v2\/(.+)\/tags\/list$/, (name) => ({ kind: "tags", name })],
  [/^\/v2\/(.+)\/referrers\/([^/]+)$/, (name, digest) => ({ kind: "referrers", name, digest: parseDigest(digest) })],
];

/** Parses a raw (still percent-encoded) request path; undefined when it is no `/v2/` route. */
export function parseV2Path(rawPath: string): V2Path | undefined {
  if (rawPath === "/v2" || rawPath === "/v2/") return { kind: "base" };
  if (rawPath === "/v2/_catalog") return { kind: "catalog" };
  for (const [pattern, build] of ROUTES) {
    const match = pattern.exec(rawPath);
    if (!match) continue;
    const name = decode(match[1]);
    if (name === undefined) throw new RegistryError("NAME_INVALID", "malformed percent-encoding in the repository name");
    if (!isRepositoryName(name)) throw new RegistryError("NAME_INVALID", undefined, { name: name.slice(0, 256) });
    // An undecodable reference, digest or upload id stays raw: its own validation refuses it.
    const arg = match[2] ?? "";
    return build(name, decode(arg) ?? arg);
  }
  return undefined;
}

/** The reference of a manifest to read or delete; one that cannot name any manifest is unknown. */
export function existingManifestReference(text: string): ManifestReference {
  if (isTag(text)) return { tag: text };
  const digest = Digest.parse(text);
  if (!digest) throw new RegistryError("MANIFEST_UNKNOWN", undefined, { reference: text.slice(0, 256) });
  return { digest };
}

/** The reference a manifest is pushed to: a valid tag, or a digest berth can verify. */
export function pushManifestReference(text: string): ManifestReference {
  if (isTag(text)) return { tag: text };
  if (Digest.looksLikeDigest(text)) return { digest: parseDigest(text) };
  throw new RegistryError("MANIFEST_INVALID", "reference is neither a valid tag nor a digest", { reference: text.slice(0, 256) });
}

export function parseDigest(text: string): Digest {
  const digest = Digest.parse(text);
  if (!digest) throw new RegistryError("DIGEST_INVALID", "invalid or unsupported digest", { digest: text.slice(0, 256) });
  return digest;
}

function decode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
