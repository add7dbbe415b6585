import type { Request, Response } from "express";
import { pipeline } from "node:stream/promises";
import type { Digest } from "../reference/digest.js";
import { RegistryError } from "../registry/errors.js";
import type { Repository } from "../registry/registry.js";
import { parseRangeHeader } from "./byte-range.js";
import { sendEmpty } from "./responses.js";

/**
 * On successful blob answers only: `hit` when the repository's copy was already in berth's
 * store, `miss` when it is being fetched (or stored) for this request. A refusal carries none:
 * it would tell anyone what is cached.
 */
export const CACHE_HEADER = "Berth-Cache";

export async function headBlob(res: Response, repository: Repository, digest: Digest): Promise<void> {
  const info = await repository.statBlob(digest);
  setBlobHeaders(res, digest, info.cached);
  res.setHeader("Content-Length", info.size);
  res.status(200).end();
}

export async function getBlob(req: Request, res: Response, repository: Repository, digest: Digest): Promise<void> {
  const rangeHeader = req.header("range");
  const size = rangeHeader === undefined ? undefined : (await repository.statBlob(digest)).size;
  const range = size === undefined ? undefined : parseRangeHeader(rangeHeader, size);
  if (range === "unsatisfiable") {
    throw new RegistryError("RANGE_INVALID", undefined, undefined, { headers: { "Content-Range": `bytes */${size}` } });
  }
  const blob = await repository.openBlob(digest, range);
  setBlobHeaders(res, digest, blob.cached);
  for (const warning of blob.warnings ?? []) res.append("Warning", `299 - "${warning.replace(/"/g, "'")}"`);
  if (range) {
    res.status(206);
    res.setHeader("Content-Range", `bytes ${range.start}-${range.end}/${blob.size}`);
    res.setHeader("Content-Length", range.end - range.start + 1);
  } else {
    res.status(200);
    res.setHeader("Content-Length", blob.size);
  }
  res.flushHeaders();
  try {
    await (blob.stream.sendTo ? blob.stream.sendTo(res) : pipeline(blob.stream, res));
  } catch (err) {
    // Headers are gone: the only honest signal left is a connection cut short of Content-Length.
    blob.stream.destroy();
    res.destroy(err instanceof Error ? err : undefined);
  }
}

export async function deleteBlob(res: Response, repository: Repository, digest: Digest): Promise<void> {
  await repository.deleteBlob(digest);
  sendEmpty(res, 202);
}

function setBlobHeaders(res: Response, digest: Digest, cached: boolean): void {
  res.setHeader(CACHE_HEADER, cached ? "hit" : "miss");
  res.setHeader("Content-Type", "application/octet-stream");
  res.setHeader("Docker-Content-Digest", digest.toString());
  res.setHeader("Accept-Ranges", "bytes");
  res.setHeader("ETag", `"${digest}"`);
  res.setHeader("Cache-Control", "max-age=31536000, immutable");
}
