import type { Request, Response } from "express";
import { isTag } from "../reference/repository-name.js";
import { RegistryError } from "../registry/errors.js";
import { MAX_MANIFEST_BYTES, manifestTooLarge } from "../registry/manifest.js";
import type { ManifestReference, Repository } from "../registry/registry.js";
import { readBody } from "./request-body.js";
import { sendEmpty } from "./responses.js";

export async function getManifest(req: Request, res: Response, repository: Repository, reference: ManifestReference): Promise<void> {
  const maxAgeMs = reference.tag === undefined ? undefined : requestedMaxAge(req);
  const manifest = await repository.getManifest(reference, { accept: acceptedTypes(req), ...(maxAgeMs === undefined ? {} : { maxAgeMs }) });
  res.status(200);
  res.setHeader("Content-Type", manifest.mediaType);
  res.setHeader("Content-Length", manifest.bytes.length);
  res.setHeader("Docker-Content-Digest", manifest.digest.toString());
  res.setHeader("ETag", `"${manifest.digest}"`);
  for (const warning of manifest.warnings ?? []) res.append("Warning", `299 - "${warning.replace(/"/g, "'")}"`);
  for (const [name, value] of Object.entries(manifest.headers ?? {})) res.setHeader(name, value);
  res.end(req.method === "HEAD" ? undefined : manifest.bytes);
}

/** The spec asks registries to take at least 10 tags in one push, and lets them refuse more with 414. */
export const MAX_TAGS_PER_PUSH = 100;

/**
 * Stores a manifest. `?tag=a&tag=b` (distribution-spec, after 1.1.0) points every tag at it
 * too, all or none; each tag applied, the path's own included, is named in an `OCI-Tag` header.
 */
export async function putManifest(req: Request, res: Response, repository: Repository, reference: ManifestReference): Promise<void> {
  const tags = tagParameters(req.query.tag);
  if (Number(req.header("content-length")) > MAX_MANIFEST_BYTES) throw manifestTooLarge();
  const bytes = await readBody(req, MAX_MANIFEST_BYTES, manifestTooLarge);
  const result = await repository.putManifest(reference, req.header("content-type"), bytes, tags);
  const headers: Record<string, string | string[]> = {
    Location: `/v2/${repository.name}/manifests/${result.digest}`,
    "Docker-Content-Digest": result.digest.toString(),
  };
  if (result.subject) headers["OCI-Subject"] = result.subject.toString();
  if (result.tags.length > 0) headers["OCI-Tag"] = result.tags;
  sendEmpty(res, 201, headers);
}

/** The `tag` query parameters, each a valid tag: checked before anything is read or stored. */
function tagParameters(value: unknown): string[] {
  if (value === undefined) return [];
  const tags = Array.isArray(value) ? value : [value];
  if (tags.length > MAX_TAGS_PER_PUSH) throw new RegistryError("TAG_INVALID", `at most ${MAX_TAGS_PER_PUSH} tags in one push`, undefined, { status: 414 });
  for (const tag of tags) {
    if (typeof tag !== "string" || !isTag(tag)) {
      throw new RegistryError("TAG_INVALID", "a tag is up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -", { tag: String(tag).slice(0, 256) });
    }
  }
  return [...new Set(tags as string[])];
}

export async function deleteManifest(res: Response, repository: Repository, reference: ManifestReference): Promise<void> {
  await repository.deleteManifest(reference);
  sendEmpty(res, 202);
}

/** Media types from every Accept header line, without parameters. */
export function acceptedTypes(req: Request): string[] {
  const raw = req.headers.accept;
  const lines = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return lines
    .flatMap((line) => line.split(","))
    .map((entry) => entry.split(";")[0].trim().toLowerCase())
    .filter((type) => type !== "");
}

/**
 * The oldest answer the client takes, in ms, from its `Cache-Control` (RFC 9111 request
 * directives): `no-cache` or `max-age=0` is 0, `max-age=N` N seconds; the strictest wins, and
 * what does not parse is ignored. A node tier sends its tag policy to its parent this way.
 */
function requestedMaxAge(req: Request): number | undefined {
  const raw = req.headers["cache-control"];
  if (raw === undefined) return undefined;
  let maxAge: number | undefined;
  for (const directive of raw.split(",")) {
    const [name, value] = directive.trim().toLowerCase().split("=", 2);
    const seconds = name === "no-cache" ? 0 : name === "max-age" && value !== undefined && /^\d{1,10}$/.test(value) ? Number(value) : undefined;
    if (seconds !== undefined) maxAge = Math.min(maxAge ?? Infinity, seconds * 1000);
  }
  return maxAge;
}
