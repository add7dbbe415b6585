import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import { readDirImage, sha256Of } from "../support/dir-image.js";
import { buildImage, readLayoutBlob, MEDIA_TYPES, type BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy, skopeoInspectRaw } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

const AMD64 = { os: "linux", architecture: "amd64" };
const ARM64 = { os: "linux", architecture: "arm64", variant: "v8" };

describe("hosted registry with real clients", () => {
  let work: TempDir;
  let berth: BerthProcess;
  const images: Record<"single" | "index" | "list", BuiltImage> = {} as never;

  before(async () => {
    work = await makeTempDir("e2e-hosted");
    const layout = join(work.path, "layout");
    images.single = await buildImage(layout, { ref: "single", layers: [{ size: 4096 }, { size: 300_000, compression: "gzip-stored" }, { size: 2048, compression: "none" }] });
    images.index = await buildImage(layout, { ref: "index", platforms: [AMD64, ARM64], layers: [{ size: 8192 }, { size: 1024 }], archRefs: true });
    images.list = await buildImage(layout, { ref: "list", format: "docker", platforms: [AMD64, { os: "linux", architecture: "arm64" }], archRefs: true });
    berth = await BerthProcess.start();
  });
  after(async () => {
    await berth?.close();
    await work?.remove();
  });

  /** Pushes with `skopeo copy --all`, copies back into a fresh `dir:` and checks every byte against what was built. */
  async function assertRoundTrip(registryHost: string, image: BuiltImage, repository: string): Promise<void> {
    const reference = `docker://${registryHost}/${repository}:v1`;
    await skopeoCopy(image.source, reference, { all: true, preserveDigests: true });
    const out = await makeTempDir("e2e-out");
    try {
      await skopeoCopy(reference, `dir:${out.path}`, { all: true, preserveDigests: true });
      const copied = await readDirImage(out.path);
      assert.equal(copied.manifestDigest, image.digest, "top-level manifest digest");
      assert.ok(copied.manifest.equals(await readLayoutBlob(image.layoutDir, image.digest)), "top-level manifest bytes");
      for (const [digest, bytes] of copied.instances) assert.equal(sha256Of(bytes), digest, `instance manifest ${digest}`);
      for (const [name, contentDigest] of copied.blobs) assert.equal(contentDigest, name, `blob ${name} content`);
      assert.deepEqual([...copied.digests].sort(), [...image.digests].sort(), "the same set of manifests and blobs");
    } finally {
      await out.remove();
    }
  }

  it("round-trips a single-arch OCI image through skopeo byte for byte", async () => {
    await assertRoundTrip(berth.host, images.single, "e2e/single");
  });

  it("round-trips a multi-arch OCI index and every platform's image byte for byte", async () => {
    await assertRoundTrip(berth.host, images.index, "e2e/index");
  });

  it("round-trips a Docker manifest list unchanged, media type and digest included", async () => {
    await assertRoundTrip(berth.host, images.list, "e2e/list");
    const raw = await skopeoInspectRaw(`docker://${berth.host}/e2e/list:v1`);
    assert.equal(sha256Of(raw), images.list.digest);
    assert.equal((JSON.parse(raw.toString("utf8")) as { mediaType: string }).mediaType, MEDIA_TYPES.dockerManifestList);
  });

  it("serves a manifest by digest with the digest it was pushed with", async () => {
    await skopeoCopy(images.index.source, `docker://${berth.host}/e2e/by-digest:v1`, { all: true, preserveDigests: true });
    for (const digest of [images.index.digest, ...images.index.manifests.map((m) => m.digest)]) {
      const raw = await skopeoInspectRaw(`docker://${berth.host}/e2e/by-digest@${digest}`);
      assert.equal(sha256Of(raw), digest);
    }
  });

  it("keeps the index entry's digest for a per-arch image pushed under an -arch name", async () => {
    for (const image of [images.index, images.list]) {
      for (const manifest of image.manifests) {
        const repository = `e2e/pause-${manifest.platform.architecture}`;
        await skopeoCopy(manifest.source!, `docker://${berth.host}/${repository}:${image.ref}`, { preserveDigests: true });
        const raw = await skopeoInspectRaw(`docker://${berth.host}/${repository}:${image.ref}`);
        assert.equal(sha256Of(raw), manifest.digest, `${repository}:${image.ref}`);
      }
    }
  });

  it("containerd pulls only the linux/arm64 image of a multi-arch index straight from berth", async (t) => {
    const containerd = await Containerd.start();
    t.after(() => containerd.close());
    await skopeoCopy(images.index.source, `docker://${berth.host}/e2e/ctr:v1`, { all: true, preserveDigests: true });
    await containerd.setHosts(berth.host, { server: berth.url });

    const pulled = await containerd.pull(`${berth.host}/e2e/ctr:v1`, { platform: "linux/arm64" });

    assert.equal(pulled.digest, images.index.digest);
    assert.equal(pulled.mediaType, MEDIA_TYPES.ociIndex);
    const [amd64, arm64] = images.index.manifests;
    const arm64Digests = [images.index.digest, arm64.digest, arm64.config.digest, ...arm64.layers.map((l) => l.digest)];
    assert.deepEqual([...pulled.contentDigests].sort(), arm64Digests.sort(), "the index and the arm64 image, nothing of amd64");
    assert.ok(!pulled.contentDigests.includes(amd64.layers[0].digest));
  });
});

describe("docker-registry as origin (harness sanity)", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let multi: BuiltImage;
  let list: BuiltImage;

  before(async () => {
    work = await makeTempDir("e2e-origin");
    multi = await buildImage(join(work.path, "layout"), { ref: "multi", platforms: [AMD64, ARM64] });
    list = await buildImage(join(work.path, "layout"), { ref: "list", format: "docker", platforms: [AMD64, { os: "linux", architecture: "arm64" }] });
    origin = await OriginRegistry.start();
  });
  after(async () => {
    await origin?.close();
    await work?.remove();
  });

  it("receives the same skopeo pushes and serves them back unchanged", async () => {
    for (const image of [multi, list]) {
      await skopeoCopy(image.source, `docker://${origin.host}/sanity/${image.ref}:v1`, { all: true, preserveDigests: true });
      const out = await makeTempDir("e2e-origin-out");
      try {
        await skopeoCopy(`docker://${origin.host}/sanity/${image.ref}:v1`, `dir:${out.path}`, { all: true, preserveDigests: true });
        const copied = await readDirImage(out.path);
        assert.equal(copied.manifestDigest, image.digest);
        assert.deepEqual([...copied.digests].sort(), [...image.digests].sort());
      } finally {
        await out.remove();
      }
    }
  });

  it("counts each blob the origin served in its access log", async () => {
    const layer = multi.manifests[1].layers[0].digest;
    const path = `/v2/sanity/multi/blobs/${layer}`;
    const before = await origin.count("GET", path);
    const out = await makeTempDir("e2e-origin-count");
    try {
      await skopeoCopy(`docker://${origin.host}/sanity/multi:v1`, `dir:${out.path}`, { overrideArch: "arm64", overrideVariant: "v8" });
    } finally {
      await out.remove();
    }
    assert.equal((await origin.count("GET", path)) - before, 1);
  });
});
