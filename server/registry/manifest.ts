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

  const declared = typeof body.mediaType === "string" && body.mediaType !== "" ? body.mediaType : undefined;
  const sent = contentType?.split(";")[0].trim().toLowerCase();
  if (declared && sent && sent !== declared) {
    throw invalid(`Content-Type ${sent} does not match the manifest's mediaType ${declared}`);
  }
  const mediaType = declared ?? (sent || undefined) ?? (Array.isArray(body.manifests) ? OCI_INDEX : OCI_MANIFEST);
  if (!MANIFEST_TYPES.includes(mediaType)) throw invalid(`unsupported manifest media type ${mediaType}`);

  const parsed: ParsedManifest = { mediaType, blobs: [], manifests: [] };
  if (INDEX_TYPES.includes(mediaType)) {
    if (!Array.isArray(body.manifests)) throw invalid("an index needs a manifests array");
    parsed.manifests = body.manifests.map((d, i) => descriptor(d, `manifests[${i}]`));
  } else {
    if (!Array.isArray(body.layers)) throw invalid("an image manifest needs a layers array");
    const config = descriptor(body.config, "config");
    parsed.blobs.push(Digest.parse(config.digest)!);
    body.layers.forEach((raw, i) => {
      const layer = descriptor(raw, `layers[${i}]`);
      const foreign = Array.isArray((raw as RawDescriptor).urls) && ((raw as RawDescriptor).urls as unknown[]).length > 0;
      if (!foreign) parsed.blobs.push(Digest.parse(layer.digest)!);
    });
    parsed.artifactType = typeof body.artifactType === "string" ? body.artifactType : config.mediaType;
  }
  if (typeof body.artifactType === "string") parsed.artifactType = body.artifactType;
  if (body.subject !== undefined) parsed.subject = Digest.parse(descriptor(body.subject, "subject").digest);
  if (isStringMap(body.annotations)) parsed.annotations = body.annotations;
  return parsed;
}

function descriptor(raw: unknown, where: string): Descriptor {
  if (typeof raw !== "object" || raw === null) throw invalid(`${where} is not a descriptor`);
  const d = raw as RawDescriptor;
  if (typeof d.mediaType !== "string" || d.mediaType === "") throw invalid(`${where}.mediaType is missing`);
  if (typeof d.digest !== "string" || !Digest.parse(d.digest)) throw invalid(`${where}.digest is not a valid digest`);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) throw invalid(`${where}.size is not a non-negative integer`);
  const result: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (typeof d.platform === "object" && d.platform !== null) result.platform = d.platform as Record<string, unknown>;
  if (typeof d.artifactType === "string") result.artifactType = d.artifactType;
  if (isStringMap(d.annotations)) result.annotations = d.annotations;
  return result;
}

function isStringMap(value: unknown): value is Record<string, string> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === "string");
}

function invalid(message: string): RegistryError {
  return new RegistryError("MANIFEST_INVALID", message);
}
