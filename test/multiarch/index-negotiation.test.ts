import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { sha256Of } from "../support/dir-image.js";
import { buildImage, MEDIA_TYPES, readLayoutBlob, type BuiltImage, type BuiltManifest } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy, skopeoInspectRaw } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { AMD64, ARM64, CONTAINERD_ACCEPT, fetchManifest, INDEXLESS_ACCEPT, mirroring, type ManifestResponse } from "./origin-mirror.js";

/** What a docker 17-era client sends: Docker manifests and manifest lists, no OCI type. */
const DOCKER_ONLY_ACCEPT = [MEDIA_TYPES.dockerManifest, MEDIA_TYPES.dockerManifestList, "application/vnd.docker.distribution.manifest.v1+prettyjws"];

/** Asserts that `response` is exactly `manifest`: its bytes, digest and media type, and no index anywhere. */
function assertManifest(response: ManifestResponse, manifest: BuiltManifest, platform: string): void {
  assert.equal(response.status, 200);
  assert.equal(response.digest, manifest.digest, "the platform manifest's own digest");
  assert.equal(sha256Of(response.bytes), manifest.digest);
  assert.equal(response.mediaType, manifest.mediaType, "the platform manifest's own media type");
  assert.equal(response.headers.get("berth-platform"), platform);
  assert.equal((JSON.parse(response.bytes.toString("utf8")) as { manifests?: unknown }).manifests, undefined, "not an index");
}

describe("indexes and manifest lists, negotiated by Accept, mirrored and hosted", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let berth: BerthProcess;
  /** On the origin (and pushed to berth's hosted repositories) as pause:3.9 and legacy/pause:3.9. */
  let images: { oci: BuiltImage; docker: BuiltImage };
  const repositories = { oci: "pause", docker: "legacy/pause" } as const;
  const flavours = ["oci", "docker"] as const;

  before(async () => {
    work = await makeTempDir("multiarch-negotiation");
    const layout = join(work.path, "layout");
    images = {
      oci: await buildImage(layout, { ref: "oci", platforms: [AMD64, ARM64], seed: "negotiation-oci" }),
      docker: await buildImage(layout, { ref: "docker", format: "docker", platforms: [AMD64, { os: "linux", architecture: "arm64" }], seed: "negotiation-docker" }),
    };
    origin = await OriginRegistry.start();
    for (const flavour of flavours) {
      await skopeoCopy(images[flavour].source, `docker://${origin.host}/${repositories[flavour]}:3.9`, { all: true, preserveDigests: true });
    }
    berth = await BerthProcess.start({ config: mirroring(origin) });
  });
  after(async () => {
    await berth?.close();
    await origin?.close();
    await work?.remove();
  });

  /** The same repository and tag as containerd (`?ns=`) and as skopeo and curl (the `origin` prefix) name it. */
  function mirroredPaths(repository: string): string[] {
    return [`origin/${repository}/manifests/3.9`, `${repository}/manifests/3.9?ns=${origin.host}`];
  }

  for (const flavour of flavours) {
    const kind = flavour === "oci" ? "OCI index" : "Docker manifest list";
    const what = flavour === "oci" ? `an ${kind}` : `a ${kind}`;

    it(`gives an index-less Accept the linux/amd64 manifest of ${what}, never the index`, async () => {
      for (const path of mirroredPaths(repositories[flavour])) {
        assertManifest(await fetchManifest(berth.url, path, INDEXLESS_ACCEPT), images[flavour].manifests[0], "linux/amd64");
        const head = await fetchManifest(berth.url, path, INDEXLESS_ACCEPT, "HEAD");
        assert.equal(head.digest, images[flavour].manifests[0].digest, `HEAD ${path}`);
        assert.equal(head.mediaType, images[flavour].manifests[0].mediaType, `HEAD ${path}`);
      }
    });

    it(`gives an index-less Accept the linux/arm64 manifest of ${what} when platform is linux/arm64`, async (t) => {
      const arm = await BerthProcess.start({ config: mirroring(origin, {}, { platform: "linux/arm64" }) });
      t.after(() => arm.close());

      for (const path of mirroredPaths(repositories[flavour])) {
        assertManifest(await fetchManifest(arm.url, path, INDEXLESS_ACCEPT), images[flavour].manifests[1], "linux/arm64");
      }
    });

    it(`serves ${what} asked for by its digest as itself, even to an index-less Accept (a digest pins content)`, async () => {
      const image = images[flavour];
      for (const path of [`origin/${repositories[flavour]}/manifests/${image.digest}`, `${repositories[flavour]}/manifests/${image.digest}?ns=${origin.host}`]) {
        const response = await fetchManifest(berth.url, path, INDEXLESS_ACCEPT);
        assert.equal(response.status, 200, path);
        assert.equal(response.digest, image.digest, path);
        assert.equal(sha256Of(response.bytes), image.digest, path);
        assert.equal(response.mediaType, image.mediaType, path);
        assert.equal(response.headers.get("berth-platform"), null, `${path}: not negotiated`);
      }
    });

    it(`passes ${what} through byte for byte, with the origin's digest, to skopeo and to containerd's Accept`, async () => {
      const image = images[flavour];
      const originRaw = await skopeoInspectRaw(`docker://${origin.host}/${repositories[flavour]}:3.9`);
      const berthRaw = await skopeoInspectRaw(`docker://${berth.host}/origin/${repositories[flavour]}:3.9`);

      assert.equal(sha256Of(originRaw), image.digest);
      assert.ok(berthRaw.equals(originRaw), "skopeo inspect --raw: the origin's bytes");
      for (const path of mirroredPaths(repositories[flavour])) {
        const response = await fetchManifest(berth.url, path, CONTAINERD_ACCEPT);
        assert.equal(response.status, 200, path);
        assert.equal(response.digest, image.digest, path);
        assert.equal(response.mediaType, image.mediaType, path);
        assert.ok(response.bytes.equals(originRaw), `${path}: the origin's bytes`);
        assert.equal(response.headers.get("berth-platform"), null, `${path}: not negotiated`);
      }
    });

    it(`passes a pushed ${kind} through byte for byte from a hosted repository, and negotiates it for an index-less Accept`, async () => {
      const image = images[flavour];
      const repository = `hosted/${repositories[flavour]}`;
      await skopeoCopy(image.source, `docker://${berth.host}/${repository}:3.9`, { all: true, preserveDigests: true });
      const built = await readLayoutBlob(image.layoutDir, image.digest);

      assert.ok((await skopeoInspectRaw(`docker://${berth.host}/${repository}:3.9`)).equals(built), "skopeo inspect --raw: the pushed bytes");
      const full = await fetchManifest(berth.url, `${repository}/manifests/3.9`, CONTAINERD_ACCEPT);
      assert.equal(full.digest, image.digest);
      assert.equal(full.mediaType, image.mediaType);
      assert.ok(full.bytes.equals(built));
      assertManifest(await fetchManifest(berth.url, `${repository}/manifests/3.9`, INDEXLESS_ACCEPT), image.manifests[0], "linux/amd64");
    });
  }

  it("gives a client that accepts Docker manifest lists but no OCI type the linux/amd64 manifest of an OCI index", async () => {
    for (const path of mirroredPaths(repositories.oci)) {
      assertManifest(await fetchManifest(berth.url, path, DOCKER_ONLY_ACCEPT), images.oci.manifests[0], "linux/amd64");
    }
  });

  it("passes a Docker manifest list through to a client that accepts it but no OCI type", async () => {
    const response = await fetchManifest(berth.url, `origin/${repositories.docker}/manifests/3.9`, DOCKER_ONLY_ACCEPT);

    assert.equal(response.digest, images.docker.digest);
    assert.equal(response.mediaType, MEDIA_TYPES.dockerManifestList);
  });
});
