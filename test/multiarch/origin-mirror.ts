import { MEDIA_TYPES } from "../support/oci-image-builder.js";
import type { OriginRegistry } from "../support/origin-registry.js";
import { readDirImage, type DirImage } from "../support/dir-image.js";
import { skopeoCopy, type SkopeoCopyOptions } from "../support/skopeo.js";
import { makeTempDir } from "../support/temp-dir.js";
import { CONTAINERD_ACCEPT } from "../support/containerd.js";

/** The path prefix berth serves the origin under: `/v2/origin/<repo>/...` (skopeo, podman, curl). */
export const ORIGIN_PREFIX = "origin";

export const AMD64 = { os: "linux", architecture: "amd64" };
export const ARM64 = { os: "linux", architecture: "arm64", variant: "v8" };

/** What containerd sends when it resolves a tag (docs/design.md §7): every manifest and index type, and the wildcard. */
export { CONTAINERD_ACCEPT };

/** What an old docker client sends: image manifests only, no index type. */
export const INDEXLESS_ACCEPT = [MEDIA_TYPES.dockerManifest];

/**
 * berth's config with `origin` as its one upstream: containerd reaches it with
 * `?ns=<origin host>`, skopeo and curl through the `origin` prefix (its host has a port).
 */
export function mirroring(origin: OriginRegistry, upstream: Record<string, unknown> = {}, config: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...config, upstreams: [{ host: origin.host, url: origin.url, prefix: ORIGIN_PREFIX, ...upstream }] };
}

/** A manifest response as a client sees it. */
export interface ManifestResponse {
  status: number;
  headers: Headers;
  bytes: Buffer;
  /** `Content-Type` without parameters. */
  mediaType: string;
  /** `Docker-Content-Digest`. */
  digest: string | null;
}

/** `GET` (or `HEAD`) `<registry>/v2/<path>` with one Accept line listing `accept`. */
export async function fetchManifest(registryUrl: string, path: string, accept: readonly string[], method: "GET" | "HEAD" = "GET"): Promise<ManifestResponse> {
  const response = await fetch(`${registryUrl}/v2/${path}`, { method, headers: { Accept: accept.join(", ") } });
  const bytes = Buffer.from(await response.arrayBuffer());
  return {
    status: response.status,
    headers: response.headers,
    bytes,
    mediaType: (response.headers.get("content-type") ?? "").split(";")[0].trim(),
    digest: response.headers.get("docker-content-digest"),
  };
}

/** The `code` of the first error in an OCI error body. */
export function errorCode(response: ManifestResponse): string | undefined {
  return (JSON.parse(response.bytes.toString("utf8")) as { errors?: { code?: string }[] }).errors?.[0]?.code;
}

/** `skopeo copy SOURCE dir:TMP`, read back with every digest computed; the temp dir is gone afterwards. */
export async function copyToDir(source: string, options: SkopeoCopyOptions = {}): Promise<DirImage> {
  const out = await makeTempDir("multiarch-out");
  try {
    await skopeoCopy(source, `dir:${out.path}`, options);
    return await readDirImage(out.path);
  } finally {
    await out.remove();
  }
}
