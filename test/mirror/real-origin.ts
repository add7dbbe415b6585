import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { createServer } from "node:net";
import { join } from "node:path";
import type { BerthProcess } from "../support/berth-process.js";
import { readDirImage, type DirImage } from "../support/dir-image.js";
import { buildImage, readLayoutBlob, type BuiltImage, type ImageSpec } from "../support/oci-image-builder.js";
import { OriginRegistry, type OriginAuth } from "../support/origin-registry.js";
import { skopeoCopy, type SkopeoCopyOptions } from "../support/skopeo.js";
import { makeTempDir } from "../support/temp-dir.js";
import { TokenIssuer } from "../support/token-issuer.js";
import { rawS3Client, swiftS3 } from "../support/swift-s3.js";
import { CONTAINERD_ACCEPT } from "../support/containerd.js";

/** The path prefix berth serves the origin under (its host has a port): `/v2/origin/<repo>/...`. */
export const ORIGIN_PREFIX = "origin";

export const AMD64 = { os: "linux", architecture: "amd64" };
export const ARM64 = { os: "linux", architecture: "arm64", variant: "v8" };


/** berth's config with `origin` as its one upstream (`host`, `url`, prefix `origin`), plus `upstream` keys and top-level `config` keys. */
export function mirrorOf(origin: OriginRegistry, upstream: Record<string, unknown> = {}, config: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...config, upstreams: [{ host: origin.host, url: origin.url, prefix: ORIGIN_PREFIX, ...upstream }] };
}

/** How an origin authenticates its clients: anyone, htpasswd Basic, or Bearer tokens from an issuer. */
export type OriginMode = "anonymous" | "htpasswd" | "token";

/** The one account of an authenticated origin. */
export const ORIGIN_USER = { username: "puller", password: "s3cret-pull" };

/** A running origin of some mode, with its token issuer, if any. */
export interface RunningOrigin {
  origin: OriginRegistry;
  issuer?: TokenIssuer;
  /** `USER:PASSWORD` for pushes, undefined when anonymous. */
  creds?: string;
  close(): Promise<void>;
}

/** Starts an origin that lets `ORIGIN_USER` (and, when anonymous, anyone) push and pull. */
export async function startOrigin(mode: OriginMode): Promise<RunningOrigin> {
  const users = { [ORIGIN_USER.username]: ORIGIN_USER.password };
  const issuer = mode === "token" ? await TokenIssuer.start({ users }) : undefined;
  let auth: OriginAuth = { kind: "anonymous" };
  if (mode === "htpasswd") auth = { kind: "htpasswd", users };
  if (issuer) auth = { kind: "token", issuer };
  const origin = await OriginRegistry.start({ auth }).catch(async (err: unknown) => {
    await issuer?.close();
    throw err;
  });
  return {
    origin,
    issuer,
    creds: mode === "anonymous" ? undefined : `${ORIGIN_USER.username}:${ORIGIN_USER.password}`,
    close: async () => {
      await origin.close();
      await issuer?.close();
    },
  };
}

/**
 * Builds images into one layout and pushes them to an origin with their digests preserved,
 * one after another, since a layout takes one build at a time.
 */
export class OriginPublisher {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly layoutDir: string,
    private readonly origin: OriginRegistry,
    private readonly destCreds?: string,
  ) {}

  /** Builds `spec` and pushes it to `ORIGIN/<repository>:<tag>`. */
  publish(repository: string, tag: string, spec: ImageSpec): Promise<BuiltImage> {
    const published = this.queue.then(async () => {
      const image = await buildImage(this.layoutDir, spec);
      await skopeoCopy(image.source, `docker://${this.origin.host}/${repository}:${tag}`, { all: true, preserveDigests: true, destCreds: this.destCreds });
      return image;
    });
    this.queue = published.catch(() => {});
    return published;
  }

  /**
   * Points `ORIGIN/<repository>:<tag>` at an image already published to that repository under
   * another tag: one manifest PUT (anonymous origins only), so a tag moves at a moment the test controls.
   */
  async retag(repository: string, tag: string, image: BuiltImage): Promise<void> {
    const response = await fetch(`${this.origin.url}/v2/${repository}/manifests/${tag}`, {
      method: "PUT",
      headers: { "Content-Type": image.mediaType },
      body: new Uint8Array(await readLayoutBlob(this.layoutDir, image.digest)),
    });
    if (response.status !== 201) throw new Error(`retagging ${repository}:${tag} answered ${response.status}: ${await response.text()}`);
  }
}

/** `skopeo copy --all SOURCE dir:TMP`, read back with every blob hashed; the copy is removed afterwards. */
export async function copyToDir(source: string, options: SkopeoCopyOptions = {}): Promise<DirImage> {
  const out = await makeTempDir("mirror-copy");
  try {
    await skopeoCopy(source, `dir:${out.path}`, { all: true, ...options });
    return await readDirImage(out.path);
  } finally {
    await out.remove();
  }
}

/** Every blob a copy holds hashes to the digest it is named by. */
export function mismatchedBlobs(copy: DirImage): string[] {
  return [...copy.blobs].filter(([name, content]) => name !== content).map(([name]) => name);
}

/** Every blob GET path of an image in an origin repository: configs and layers. */
export function blobPaths(repository: string, image: BuiltImage): string[] {
  const digests = new Set(image.manifests.flatMap((m) => [m.config.digest, ...m.layers.map((l) => l.digest)]));
  return [...digests].map((digest) => `/v2/${repository}/blobs/${digest}`);
}

/** How many GETs of each path the origin served, in the order given. */
export async function getCounts(origin: OriginRegistry, paths: string[]): Promise<number[]> {
  const log = await origin.accessLog();
  return paths.map((path) => log.filter((e) => e.method === "GET" && e.path === path).length);
}

/** Where the origin's access log ends now: pass to `requestsNotFromBerth` to look only at later requests. */
export async function accessLogMark(origin: OriginRegistry): Promise<number> {
  return (await origin.accessLog()).length;
}

/** Requests under a repository the origin served, after `since`, to anyone but berth (whose User-Agent is `berth`). */
export async function requestsNotFromBerth(origin: OriginRegistry, repository: string, since: number): Promise<string[]> {
  const log = (await origin.accessLog()).slice(since);
  return log.filter((e) => e.path.startsWith(`/v2/${repository}/`) && e.userAgent !== "berth").map((e) => `${e.method} ${e.path} (${e.userAgent})`);
}

/** Requests berth sent to the origin under a repository, as `METHOD PATH`. */
export async function requestsFromBerth(origin: OriginRegistry, repository: string): Promise<string[]> {
  const log = await origin.accessLog();
  return log.filter((e) => e.path.startsWith(`/v2/${repository}/`) && e.userAgent === "berth").map((e) => `${e.method} ${e.path}`);
}

/** A loopback `host:port` nothing listens on: a registry location only a mirror can stand in for. */
export async function closedLoopbackPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

/** A manifest as berth answers a tag or digest: status, digest, Warning headers, error code. */
export interface ManifestAnswer {
  status: number;
  digest: string | null;
  warnings: string[];
  code?: string;
  message?: string;
  headers: Headers;
}

/** `GET <berth>/v2/<path>` with containerd's Accept; `query` e.g. `ns=HOST`. */
export async function getManifest(berth: BerthProcess, path: string, query = ""): Promise<ManifestAnswer> {
  const response = await fetch(`${berth.url}/v2/${path}${query ? `?${query}` : ""}`, { headers: { Accept: CONTAINERD_ACCEPT.join(", ") }, signal: AbortSignal.timeout(60_000) });
  const body = Buffer.from(await response.arrayBuffer());
  const answer: ManifestAnswer = {
    status: response.status,
    digest: response.headers.get("docker-content-digest"),
    warnings: response.headers.get("warning")?.split(/,\s*(?=\d{3} )/) ?? [],
    headers: response.headers,
  };
  if (response.status >= 400) {
    const error = (JSON.parse(body.toString("utf8")) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
    answer.code = error?.code;
    answer.message = error?.message;
  } else if (answer.digest !== null && `sha256:${createHash("sha256").update(body).digest("hex")}` !== answer.digest) {
    throw new Error(`berth's ${path} does not hash to its Docker-Content-Digest ${answer.digest}`);
  }
  return answer;
}

/** The size of a blob berth stored (its file, or its object on S3); undefined when berth does not hold it. */
export async function storedBlobSize(berth: BerthProcess, digest: string): Promise<number | undefined> {
  const hex = digest.slice("sha256:".length);
  const path = `blobs/sha256/${hex.slice(0, 2)}/${hex}`;
  if (!berth.storage) return (await stat(join(berth.storageDir, path)).catch(() => undefined))?.size;
  const s3 = berth.storage.s3 as { bucket: string; prefix?: string };
  const client = rawS3Client(await swiftS3());
  try {
    const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${s3.prefix ?? ""}${path}` })).catch(() => undefined);
    return head?.ContentLength;
  } finally {
    client.destroy();
  }
}

/** Where a filesystem-backed Distribution keeps a blob's bytes. */
export function originBlobPath(origin: OriginRegistry, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return join(origin.storageDir, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
}
