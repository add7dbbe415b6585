import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import { buildImage, MEDIA_TYPES, type BuiltImage, type BuiltManifest } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy, skopeoInspectRaw } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { AMD64, ARM64, CONTAINERD_ACCEPT, copyToDir, errorCode, fetchManifest, mirroring } from "./origin-mirror.js";

/** Everything one platform's image consists of. */
function imageDigests(manifest: BuiltManifest): string[] {
  return [manifest.digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)].sort();
}

describe("name-<arch>:tag served from the <arch> entry of name:tag's index, with real clients", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let berth: BerthProcess;
  let pause: BuiltImage;
  let arm64: BuiltManifest;

  before(async () => {
    work = await makeTempDir("multiarch-suffix");
    pause = await buildImage(join(work.path, "layout"), { ref: "pause", platforms: [AMD64, ARM64], layers: [{ size: 2048 }, { size: 1024 }], seed: "suffix-fallback" });
    arm64 = pause.manifests[1];
    origin = await OriginRegistry.start();
    await skopeoCopy(pause.source, `docker://${origin.host}/pause:3.9`, { all: true, preserveDigests: true });
    berth = await BerthProcess.start({ config: mirroring(origin) });
  });
  after(async () => {
    await berth?.close();
    await origin?.close();
    await work?.remove();
  });

  it("containerd pulls ORIGIN/pause-arm64:3.9 through its hosts.toml mirror: the arm64 entry's manifest, config and layers", async (t) => {
    const containerd = await Containerd.start();
    t.after(() => containerd.close());
    await containerd.setHosts(origin.host, { server: origin.url, mirrors: [{ url: berth.url }] });

    const pulled = await containerd.pull(`${origin.host}/pause-arm64:3.9`, { platform: "linux/arm64" });

    assert.equal(pulled.digest, arm64.digest, "the origin's arm64 index entry");
    assert.equal(pulled.mediaType, MEDIA_TYPES.ociManifest);
    assert.deepEqual([...pulled.contentDigests].sort(), imageDigests(arm64));
    const direct = (await origin.accessLog()).filter((e) => e.userAgent.startsWith("containerd/"));
    assert.deepEqual(direct, [], "containerd never had to go to the origin itself");
  });

  it("skopeo copies origin/pause-arm64:3.9 through the prefix as the arm64 entry, every blob verified", async () => {
    const originIndex = JSON.parse((await skopeoInspectRaw(`docker://${origin.host}/pause:3.9`)).toString("utf8")) as { manifests: { digest: string; platform: { architecture: string } }[] };

    const copied = await copyToDir(`docker://${berth.host}/origin/pause-arm64:3.9`, { overrideArch: "arm64" });

    assert.equal(copied.manifestDigest, originIndex.manifests.find((m) => m.platform.architecture === "arm64")?.digest, "the origin's arm64 index entry");
    assert.equal(copied.manifestDigest, arm64.digest);
    for (const [name, contentDigest] of copied.blobs) assert.equal(contentDigest, name, `blob ${name} content`);
    assert.deepEqual([...copied.digests].sort(), imageDigests(arm64));
  });

  it("says which index entry answered, in Berth-Fallback", async () => {
    const response = await fetchManifest(berth.url, "origin/pause-arm64/manifests/3.9", CONTAINERD_ACCEPT);

    assert.equal(response.status, 200);
    assert.equal(response.digest, arm64.digest);
    assert.equal(response.headers.get("berth-fallback"), "index-entry; from=origin/pause:3.9");
  });

  it("serves a hosted pause-arm64:3.9 from the arm64 entry of a pushed pause:3.9 index", async () => {
    await skopeoCopy(pause.source, `docker://${berth.host}/hosted/pause:3.9`, { all: true, preserveDigests: true });

    const copied = await copyToDir(`docker://${berth.host}/hosted/pause-arm64:3.9`, { overrideArch: "arm64" });

    assert.equal(copied.manifestDigest, arm64.digest);
    assert.deepEqual([...copied.digests].sort(), imageDigests(arm64));
  });

  it("keeps serving pause-arm64:3.9 from what the fallback cached while the origin is down, with a Warning", async (t) => {
    const cold = await BerthProcess.start({ config: mirroring(origin) });
    t.after(() => cold.close());
    const containerd = await Containerd.start();
    t.after(() => containerd.close());
    await containerd.setHosts(origin.host, { server: origin.url, mirrors: [{ url: cold.url }] });
    const reference = `${origin.host}/pause-arm64:3.9`;
    await containerd.pull(reference, { platform: "linux/arm64" });
    await containerd.removeImage(reference);
    await origin.stop();
    t.after(() => origin.restart());

    const pulled = await containerd.pull(reference, { platform: "linux/arm64" });
    const copied = await copyToDir(`docker://${cold.host}/origin/pause-arm64:3.9`, { overrideArch: "arm64" });
    const response = await fetchManifest(cold.url, `pause-arm64/manifests/3.9?ns=${origin.host}`, CONTAINERD_ACCEPT);

    assert.equal(pulled.digest, arm64.digest);
    assert.deepEqual([...pulled.contentDigests].sort(), imageDigests(arm64));
    assert.equal(copied.manifestDigest, arm64.digest);
    assert.deepEqual([...copied.digests].sort(), imageDigests(arm64));
    assert.equal(response.digest, arm64.digest);
    assert.match(response.headers.get("warning") ?? "", /upstream unavailable/);
  });

  it("answers pause-arm64:3.9 with 404 MANIFEST_UNKNOWN when the upstream's archFallback is off", async (t) => {
    const strict = await BerthProcess.start({ config: mirroring(origin, { archFallback: { enabled: false } }) });
    t.after(() => strict.close());

    for (const path of ["origin/pause-arm64/manifests/3.9", `pause-arm64/manifests/3.9?ns=${origin.host}`]) {
      const response = await fetchManifest(strict.url, path, CONTAINERD_ACCEPT);
      assert.equal(response.status, 404, path);
      assert.equal(errorCode(response), "MANIFEST_UNKNOWN", path);
    }
    const index = await fetchManifest(strict.url, "origin/pause/manifests/3.9", CONTAINERD_ACCEPT);
    assert.equal(index.digest, pause.digest, "the index itself is still served");
  });
});
