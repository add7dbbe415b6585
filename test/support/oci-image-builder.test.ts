import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { createGunzip } from "node:zlib";
import { runCommand } from "./command.js";
import { sha256Of } from "./dir-image.js";
import { buildImage, layoutBlobPath, MEDIA_TYPES, readLayoutBlob } from "./oci-image-builder.js";
import { skopeoInspectRaw } from "./skopeo.js";
import { makeTempDir, type TempDir } from "./temp-dir.js";

async function sha256OfGunzipped(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path).pipe(createGunzip())) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

describe("oci-image-builder", () => {
  let dir: TempDir;
  before(async () => {
    dir = await makeTempDir("builder-test");
  });
  after(() => dir?.remove());

  it("builds the same digests from the same seed and different ones from another", async () => {
    const spec = { platforms: [{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "arm64" }], seed: "fixed" };
    const first = await buildImage(`${dir.path}/a`, { ...spec, ref: "x" });
    const again = await buildImage(`${dir.path}/b`, { ...spec, ref: "x" });
    const other = await buildImage(`${dir.path}/c`, { ...spec, ref: "x", seed: "other" });
    assert.deepEqual(again.digests, first.digests);
    assert.notEqual(other.digest, first.digest);
  });

  it("writes layers as tars of one file of the requested size, with diff_ids of the uncompressed tar in the config", async () => {
    const image = await buildImage(`${dir.path}/layers`, {
      ref: "layers",
      layers: [{ size: 1000 }, { size: 70_000, compression: "gzip-stored" }, { size: 512, compression: "none" }],
    });
    const [manifest] = image.manifests;
    const config = JSON.parse((await readLayoutBlob(image.layoutDir, manifest.config.digest)).toString("utf8")) as { rootfs: { diff_ids: string[] } };
    assert.deepEqual(config.rootfs.diff_ids, manifest.layers.map((l) => l.diffId));
    assert.deepEqual(manifest.layers.map((l) => l.mediaType), [MEDIA_TYPES.ociLayerGzip, MEDIA_TYPES.ociLayerGzip, MEDIA_TYPES.ociLayerTar]);
    for (const [i, layer] of manifest.layers.entries()) {
      const path = layoutBlobPath(image.layoutDir, layer.digest);
      assert.equal((await stat(path)).size, layer.size);
      assert.equal(layer.mediaType === MEDIA_TYPES.ociLayerTar ? layer.digest : await sha256OfGunzipped(path), layer.diffId);
      const listing = await runCommand("tar", ["-tvf", path]);
      assert.match(listing.stdout, new RegExp(`^-rw-r--r-- root/root\\s+${[1000, 70_000, 512][i]} .* layer-${i}\\.bin\\n$`));
    }
  });

  it("names an index, its per-arch manifests and a Docker manifest list so skopeo reads them back unchanged", async () => {
    const platforms = [{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "arm", variant: "v7" }];
    const oci = await buildImage(`${dir.path}/named`, { ref: "oci", platforms, archRefs: true });
    const docker = await buildImage(`${dir.path}/named`, { ref: "docker", format: "docker", platforms, archRefs: true });
    for (const image of [oci, docker]) {
      assert.equal(sha256Of(await skopeoInspectRaw(image.source)), image.digest);
      for (const m of image.manifests) assert.equal(sha256Of(await skopeoInspectRaw(m.source!)), m.digest);
    }
    const list = JSON.parse((await readLayoutBlob(docker.layoutDir, docker.digest)).toString("utf8")) as { mediaType: string; manifests: { platform: object }[] };
    assert.equal(list.mediaType, MEDIA_TYPES.dockerManifestList);
    assert.deepEqual(list.manifests.map((m) => m.platform), platforms);
  });

  it("streams a large layer without holding it in memory", async () => {
    const size = 256 * 1024 * 1024;
    const image = await buildImage(`${dir.path}/large`, { ref: "large", layers: [{ size, compression: "none" }] });
    const [layer] = image.manifests[0].layers;
    assert.equal(layer.size, size + 512 + 1024);
    assert.ok(process.memoryUsage().rss < size, "resident memory stays below the layer's size");
  });
});
