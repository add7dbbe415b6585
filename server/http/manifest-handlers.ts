import type { Request, Response } from "express";
import { MAX_MANIFEST_BYTES, manifestTooLarge } from "../registry/manifest.js";
import type { ManifestReference, Repository } from "../registry/registry.js";
import { readBody } from "./request-body.js";
import { sendEmpty } from "./responses.js";

export async function getManifest(req: Request, res: Response, repository: Repository, reference: ManifestReference): Promise<void> {
  const manifest = await repository.getManifest(reference, { accept: acceptedTypes(req) });
  res.status(200);
  res.setHeader("Content-Type", manifest.mediaType);
  res.setHeader("Content-Length", manifest.bytes.length);
  res.setHeader("Docker-Content-Digest", manifest.digest.toString());
  res.setHeader("ETag", `"${manifest.digest}"`);
  for (const warning of manifest.warnings ?? []) res.append("Warning", `299 - "${warning.replace(/"/g, "'")}"`);
  for (const [name, value] of Object.entries(manifest.headers ?? {})) res.setHeader(name, value);
  res.end(req.method === "HEAD" ? undefined : manifest.bytes);
}

export async function putManifest(req: Request, res: Response, repository: Repository, reference: ManifestReference): Promise<void> {
  if (Number(req.header("content-length")) > MAX_MANIFEST_BYTES) throw manifestTooLarge();
  const bytes = await readBody(req, MAX_MANIFEST_BYTES, manifestTooLarge);
  const result = await repository.putManifest(reference, req.header("content-type"), bytes);
  const headers: Record<string, string> = {
    Location: `/v2/${repository.name}/manifests/${result.digest}`,
    "Docker-Content-Digest": result.digest.toString(),
  };
  if (result.subject) headers["OCI-Subject"] = result.subject.toString();
  sendEmpty(res, 201, headers);
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
