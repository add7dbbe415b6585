import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";

export const sha256 = (bytes: Buffer) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/**
 * Pushes a one-layer image over the distribution API, as a client with `authorization` would;
 * `extra` adds fields to its manifest.
 */
export async function pushImage(
  origin: string,
  repository: string,
  tag: string,
  authorization?: string,
  extra: Record<string, unknown> = {},
): Promise<{ manifest: string; layer: string; config: string; layerBytes: Buffer }> {
  const headers: Record<string, string> = authorization ? { authorization } : {};
  const put = async (bytes: Buffer) => {
    const digest = sha256(bytes);
    const response = await fetch(`${origin}/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: "POST", body: new Uint8Array(bytes), headers: { ...headers, "content-type": "application/octet-stream" } });
    if (response.status !== 201) {
      // Distribution answers a monolithic POST with 202: finish with PUT.
      const location = new URL(response.headers.get("location")!, origin);
      location.searchParams.set("digest", digest);
      const done = await fetch(location, { method: "PUT", body: new Uint8Array(bytes), headers: { ...headers, "content-type": "application/octet-stream" } });
      assert.equal(done.status, 201, `blob upload to ${origin}: ${done.status}`);
    }
    return digest;
  };
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
  const layerBytes = randomBytes(64 * 1024);
  const configDigest = await put(config);
  const layer = await put(layerBytes);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size: layerBytes.length }],
      ...extra,
    }),
  );
  const response = await fetch(`${origin}/v2/${repository}/manifests/${tag}`, { method: "PUT", body: new Uint8Array(manifest), headers: { ...headers, "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  assert.equal(response.status, 201, `manifest push to ${origin}: ${response.status} ${await response.text()}`);
  return { manifest: sha256(manifest), layer, config: configDigest, layerBytes };
}

