import type { Request, Response } from "express";
import type { Digest } from "../reference/digest.js";
import { RegistryError } from "../registry/errors.js";
import type { Repository } from "../registry/registry.js";
import type { UploadSession } from "../storage/uploads.js";
import { isRepositoryName } from "../reference/repository-name.js";
import { parseContentRange } from "./byte-range.js";
import { sendEmpty } from "./responses.js";
import { parseDigest } from "./v2-path.js";

/**
 * POST /v2/<name>/blobs/uploads/: a mount, a monolithic upload with `digest=`, or a new
 * session. A mount names its source with `from`, or leaves berth to find one; either way it
 * copies only from a repository the caller may pull that can serve the blob to it now (see
 * Repository.holdsBlob), and becomes an upload session otherwise.
 */
export async function startUpload(
  req: Request,
  res: Response,
  repository: Repository,
  mountSources: (digest: Digest, from: string | undefined) => AsyncIterable<Repository>,
): Promise<void> {
  const mount = queryString(req, "mount");
  const fromName = queryString(req, "from");
  if (mount !== undefined) {
    const digest = parseDigest(mount);
    if (fromName !== undefined && !isRepositoryName(fromName)) throw new RegistryError("NAME_INVALID", undefined, { name: fromName.slice(0, 256) });
    for await (const from of mountSources(digest, fromName)) {
      if (await repository.mountBlob(digest, from)) {
        sendEmpty(res, 201, { Location: blobLocation(repository, digest.toString()), "Docker-Content-Digest": digest.toString() });
        return;
      }
    }
  }
  const digestParam = mount === undefined ? queryString(req, "digest") : undefined;
  const digest = digestParam === undefined ? undefined : parseDigest(digestParam);
  const session = await repository.startUpload();
  if (digest) {
    try {
      await repository.completeUpload(session.id, digest, req);
    } catch (err) {
      await repository.cancelUpload(session.id).catch(() => {});
      throw err;
    }
    sendEmpty(res, 201, { Location: blobLocation(repository, digest.toString()), "Docker-Content-Digest": digest.toString() });
    return;
  }
  sendEmpty(res, 202, sessionHeaders(repository, session));
}

export async function uploadStatus(res: Response, repository: Repository, id: string): Promise<void> {
  sendEmpty(res, 204, sessionHeaders(repository, await repository.upload(id)));
}

/** PATCH: one chunk (with Content-Range) or the rest of the blob as a stream (without). */
export async function appendUpload(req: Request, res: Response, repository: Repository, id: string): Promise<void> {
  const range = parseContentRange(req.header("content-range"));
  if (range === "invalid") throw new RegistryError("BLOB_UPLOAD_INVALID", "malformed Content-Range");
  if (range) {
    const session = await repository.upload(id);
    if (range.start !== session.size) throw outOfOrder(repository, session);
    const length = req.header("content-length");
    if (length !== undefined && Number(length) !== range.end - range.start + 1) {
      throw new RegistryError("SIZE_INVALID", "Content-Length does not match Content-Range");
    }
  }
  const session = await repository.appendUpload(id, range?.start, req).catch((err: unknown) => {
    if (err instanceof RegistryError && err.code === "RANGE_INVALID") {
      return repository.upload(id).then((s) => Promise.reject(outOfOrder(repository, s)));
    }
    throw err;
  });
  sendEmpty(res, 202, sessionHeaders(repository, session));
}

/** PUT ?digest=: the final (optional) chunk, then verification. */
export async function completeUpload(req: Request, res: Response, repository: Repository, id: string): Promise<void> {
  const digestParam = queryString(req, "digest");
  if (digestParam === undefined) throw new RegistryError("DIGEST_INVALID", "digest query parameter is required");
  const digest = parseDigest(digestParam);
  const range = parseContentRange(req.header("content-range"));
  if (range === "invalid") throw new RegistryError("BLOB_UPLOAD_INVALID", "malformed Content-Range");
  if (range) {
    const session = await repository.upload(id);
    if (range.start !== session.size) throw outOfOrder(repository, session);
  }
  const hasBody = Number(req.header("content-length") ?? 0) > 0 || req.header("transfer-encoding") !== undefined;
  await repository.completeUpload(id, digest, hasBody ? req : undefined);
  sendEmpty(res, 201, { Location: blobLocation(repository, digest.toString()), "Docker-Content-Digest": digest.toString() });
}

export async function cancelUpload(res: Response, repository: Repository, id: string): Promise<void> {
  await repository.cancelUpload(id);
  sendEmpty(res, 204);
}

function sessionHeaders(repository: Repository, session: UploadSession): Record<string, string> {
  return {
    Location: `/v2/${repository.name}/blobs/uploads/${session.id}`,
    Range: `0-${Math.max(0, session.size - 1)}`,
    "Docker-Upload-UUID": session.id,
  };
}

function outOfOrder(repository: Repository, session: UploadSession): RegistryError {
  return new RegistryError("RANGE_INVALID", `upload continues at byte ${session.size}`, undefined, { headers: sessionHeaders(repository, session) });
}

function blobLocation(repository: Repository, digest: string): string {
  return `/v2/${repository.name}/blobs/${digest}`;
}

export function queryString(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (Array.isArray(value)) return typeof value[0] === "string" ? value[0] : undefined;
  return typeof value === "string" ? value : undefined;
}
