import { request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { sha256 } from "./store-audit.js";

/** A response read in full. */
export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string | number>;
  /** A buffer, or pieces streamed one after another (a slow client). */
  body?: Buffer | AsyncIterable<Buffer>;
  /** Whole exchange, default 60 s. */
  timeoutMs?: number;
}

/**
 * One HTTP exchange on a connection of its own (no keep-alive: a berth killed between two
 * requests must not leave a dead pooled socket behind). `url` is sent as is, unnormalised.
 */
export function http(url: string, options: HttpOptions = {}): Promise<HttpAnswer> {
  const target = new URL(url);
  const path = url.slice(url.indexOf("/", "http://".length));
  return new Promise<HttpAnswer>((resolve, reject) => {
    const req = request(
      { host: target.hostname, port: target.port, path, method: options.method ?? "GET", headers: options.headers, agent: false, timeout: options.timeoutMs ?? 60_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          if (!res.complete) reject(new Error(`${options.method ?? "GET"} ${path}: response cut short`));
          else resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        });
        res.on("error", reject);
        res.on("aborted", () => reject(new Error(`${options.method ?? "GET"} ${path}: response aborted`)));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${options.method ?? "GET"} ${path}: timed out`)));
    req.on("error", reject);
    const body = options.body;
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      void (async () => {
        try {
          for await (const piece of body) {
            if (!req.write(piece)) await new Promise((resolve) => req.once("drain", resolve));
          }
          req.end();
        } catch (err) {
          req.destroy(err as Error);
        }
      })();
    }
  });
}

/** `bytes` in pieces of `pieceBytes`, one every `intervalMs`: a client that uploads slowly. */
export async function* trickle(bytes: Buffer, pieceBytes: number, intervalMs: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += pieceBytes) {
    if (offset > 0) await sleep(intervalMs);
    yield bytes.subarray(offset, offset + pieceBytes);
  }
}

/** The first OCI error code of an error answer, if its body is one. */
export function errorCode(answer: HttpAnswer): string | undefined {
  try {
    const errors = (JSON.parse(answer.body.toString("utf8")) as { errors?: { code?: unknown }[] }).errors;
    return Array.isArray(errors) && typeof errors[0]?.code === "string" ? errors[0].code : undefined;
  } catch {
    return undefined;
  }
}

export function header(answer: HttpAnswer, name: string): string | undefined {
  const value = answer.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** Pushes a blob in one POST; returns the answer (201 when stored). */
export function pushBlob(base: string, repository: string, bytes: Buffer): Promise<HttpAnswer> {
  return http(`${base}/v2/${repository}/blobs/uploads/?digest=${sha256(bytes)}`, {
    method: "POST",
    headers: { "content-type": "application/octet-stream", "content-length": bytes.length },
    body: bytes,
  });
}

/** An OCI image manifest naming a config and layers (each `{digest, size}`). */
export function imageManifest(config: { digest: string; size: number }, layers: { digest: string; size: number }[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: layers.map((layer) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer })),
    }),
  );
}

export function putManifest(base: string, repository: string, reference: string, manifest: Buffer): Promise<HttpAnswer> {
  return http(`${base}/v2/${repository}/manifests/${reference}`, {
    method: "PUT",
    headers: { "content-type": "application/vnd.oci.image.manifest.v1+json", "content-length": manifest.length },
    body: manifest,
  });
}

/**
 * Pushes blobs (each POST then PUT ?digest=, which every registry takes) and an image manifest
 * naming the first as config and the rest as layers, under `tag`; returns the manifest's bytes.
 */
export async function pushImage(base: string, repository: string, tag: string, config: Buffer, layers: Buffer[]): Promise<Buffer> {
  for (const blob of [config, ...layers]) {
    const started = await http(`${base}/v2/${repository}/blobs/uploads/`, { method: "POST" });
    if (started.status !== 202) throw new Error(`POST upload to ${base}: ${started.status}`);
    const location = new URL(header(started, "location")!, base);
    location.searchParams.set("digest", sha256(blob));
    const put = await http(location.toString(), { method: "PUT", headers: { "content-length": blob.length }, body: blob });
    if (put.status !== 201) throw new Error(`PUT upload to ${base}: ${put.status}`);
  }
  const manifest = imageManifest(
    { digest: sha256(config), size: config.length },
    layers.map((layer) => ({ digest: sha256(layer), size: layer.length })),
  );
  const put = await putManifest(base, repository, tag, manifest);
  if (put.status !== 201) throw new Error(`PUT manifest to ${base}: ${put.status}`);
  return manifest;
}

/** A small random config blob: what every image needs besides its layers. */
export function configBlob(label: string): Buffer {
  return Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, config: { Labels: { label } } }));
}

/**
 * GETs a blob or manifest and checks what berth served: the status, and that a full body
 * hashes to `digest` (and to Docker-Content-Digest). Returns the answer.
 */
export async function getVerified(url: string, digest: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const answer = await http(url, { headers });
  if (answer.status !== 200) throw new Error(`GET ${url}: ${answer.status} ${answer.body.toString("utf8").slice(0, 300)}`);
  const served = header(answer, "docker-content-digest");
  if (served !== undefined && served !== digest) throw new Error(`GET ${url}: Docker-Content-Digest ${served}, expected ${digest}`);
  const actual = sha256(answer.body);
  if (actual !== digest) throw new Error(`GET ${url}: body hashes to ${actual}, not ${digest}`);
  return answer;
}
