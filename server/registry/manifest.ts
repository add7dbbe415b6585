import { Digest } from "../reference/digest.js";
import type { Descriptor } from "../storage/repository-metadata.js";
import { RegistryError } from "./errors.js";
import { INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST } from "./media-types.js";

/** Manifests larger than this are refused (the spec asks registries to take at least 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The answer to a manifest over the size limit: 413, as the spec suggests. */
export function manifestTooLarge(): RegistryError {
  return new RegistryError("SIZE_INVALID", `manifests are limited to ${MAX_MANIFEST_BYTES} bytes`, undefined, { status: 413 });
}

/**
 * Most distinct blobs and manifests a pushed manifest may reference: berth looks each one up
 * before it stores the manifest. Images have tens of layers and indexes tens of platforms.
 */
export const MAX_MANIFEST_REFERENCES = 1000;

/** What berth needs to know about a manifest it is asked to store. */
export interface ParsedManifest {
  mediaType: string;
  /** Blobs an image manifest points at (config and layers), excluding foreign layers. */
  blobs: Digest[];
  /** Manifests an index points at. */
  manifests: Descriptor[];
  subject?: Digest;
  artifactType?: string;
  annotations?: Record<string, string>;
}

interface RawDescriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  urls?: unknown;
  platform?: unknown;
  artifactType?: unknown;
  annotations?: unknown;
}

/** Parses and validates a manifest body against the media type it was sent with. */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
  } catch {
    throw invalid("manifest is not valid JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalid("manifest is not a JSON object");
  if (body.schemaVersion !== 2) throw invalid("only schemaVersion 2 manifests are supported");

  const declared = optional(body.mediaType, "mediaType", isString) || undefined;
  const sent = contentType?.split(";")[0].trim().toLowerCase();
  if (declared && sent && sent !== declared) {
    throw invalid(`Content-Type ${sent} does not match the manifest's mediaType ${declared}`);
  }
  const mediaType = declared ?? (sent || undefined) ?? (Array.isArray(body.manifests) ? OCI_INDEX : OCI_MANIFEST);
  if (!MANIFEST_TYPES.includes(mediaType)) throw invalid(`unsupported manifest media type ${mediaType}`);

  const parsed: ParsedManifest = { mediaType, blobs: [], manifests: [] };
  // A document with both shapes could be read as an image by one client and as an index by
  // another (CVE-2021-41190); Distribution refuses it, and so does berth.
  if (INDEX_TYPES.includes(mediaType)) {
    if (body.config !== undefined || body.layers !== undefined) throw invalid("an index may not have config or layers");
    if (!Array.isArray(body.manifests)) throw invalid("an index needs a manifests array");
    parsed.manifests = body.manifests.map((d, i) => descriptor(d, `manifests[${i}]`));
  } else {
    if (body.manifests !== undefined) throw invalid("an image manifest may not have a manifests array");
    if (!Array.isArray(body.layers)) throw invalid("an image manifest needs a layers array");
    const config = descriptor(body.config, "config");
    parsed.blobs.push(Digest.parse(config.digest)!);
    body.layers.forEach((raw, i) => {
      const layer = descriptor(raw, `layers[${i}]`);
      // Non-distributable layers live at their urls; the registry need not hold them.
      if (!layer.urls?.length) parsed.blobs.push(Digest.parse(layer.digest)!);
    });
    // The referrers API types an image manifest without artifactType by its config.
    parsed.artifactType = config.mediaType;
  }
  const artifactType = optional(body.artifactType, "artifactType", isString);
  if (artifactType) parsed.artifactType = artifactType;
  if (body.subject !== undefined) parsed.subject = Digest.parse(descriptor(body.subject, "subject").digest);
  const annotations = optional(body.annotations, "annotations", isStringMap);
  if (annotations) parsed.annotations = annotations;
  return parsed;
}

type ParsedDescriptor = Descriptor & { urls?: string[] };

function descriptor(raw: unknown, where: string): ParsedDescriptor {
  if (typeof raw !== "object" || raw === null) throw invalid(`${where} is not a descriptor`);
  const d = raw as RawDescriptor;
  if (typeof d.mediaType !== "string" || d.mediaType === "") throw invalid(`${where}.mediaType is missing`);
  if (typeof d.digest !== "string" || !Digest.parse(d.digest)) throw invalid(`${where}.digest is not a valid digest`);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) throw invalid(`${where}.size is not a non-negative integer`);
  const result: ParsedDescriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  const platform = optional(d.platform, `${where}.platform`, isObject);
  if (platform) result.platform = platform;
  const artifactType = optional(d.artifactType, `${where}.artifactType`, isString);
  if (artifactType) result.artifactType = artifactType;
  const annotations = optional(d.annotations, `${where}.annotations`, isStringMap);
  if (annotations) result.annotations = annotations;
  const urls = optional(d.urls, `${where}.urls`, isStringArray);
  if (urls) result.urls = urls;
  return result;
}

/** A field that may be absent but, when present, must have the type the image-spec gives it. */
function optional<T>(value: unknown, where: string, is: (value: unknown) => value is T): T | undefined {
  if (value === undefined) return undefined;
  if (!is(value)) throw invalid(`${where} has the wrong type`);
  return value;
}

function isString(value: unknown): value is string {
  return typeof value === "string";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isStringMap(value: unknown): value is Record<string, string> {
  return isObject(value) && Object.values(value).every(isString);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every(isString);
}

function invalid(message: string): RegistryError {
  return new RegistryError("MANIFEST_INVALID", message);
}

/**
 * The distinct blobs and manifests a pushed manifest references, each once however often it is
 * named; more than MAX_MANIFEST_REFERENCES is refused before any is looked up.
 */
export function distinctReferences(manifest: ParsedManifest): { blobs: Digest[]; manifests: Digest[] } {
  const blobs = new Map(manifest.blobs.map((digest) => [digest.toString(), digest]));
  const manifests = new Map(manifest.manifests.map((child) => [child.digest, Digest.parse(child.digest)!]));
  const count = blobs.size + manifests.size;
  if (count > MAX_MANIFEST_REFERENCES) {
    throw invalid(`the manifest references ${count} distinct blobs and manifests; berth takes at most ${MAX_MANIFEST_REFERENCES}`);
  }
  return { blobs: [...blobs.values()], manifests: [...manifests.values()] };
}

/**
 * What a manifest or index needs its registry to hold, and so what a registry serving it
 * vouches for: an image manifest's config and distributable layers, an index's manifests.
 * Foreign layers live at their urls, and no registry checks that it holds them.
 */
export function referencedDigests(bytes: Buffer, mediaType?: string): Digest[] {
  try {
    const parsed = parseManifest(bytes, mediaType);
    return [...parsed.blobs, ...parsed.manifests.map((child) => Digest.parse(child.digest)!)];
  } catch {
    return [];
  }
}
