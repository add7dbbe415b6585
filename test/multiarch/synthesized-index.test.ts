import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import { sha256Of } from "../support/dir-image.js";
import { buildImage, MEDIA_TYPES, type BuiltImage, type BuiltManifest } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { AMD64, ARM64, CONTAINERD_ACCEPT, copyToDir, errorCode, fetchManifest, INDEXLESS_ACCEPT, mirroring, type ManifestResponse } from "./origin-mirror.js";

interface Index {
  mediaType: string;
  manifests: { mediaType: string; digest: string; size: number; platform?: { os: string; architecture: string; variant?: string } }[];
  annotations?: Record<string, string>;
}

function parseIndex(response: ManifestResponse): Index {
  return JSON.parse(response.bytes.toString("utf8")) as Index;
}

describe("name:tag synthesized as an index from per-arch name-<arch>:tag tags, with real clients", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let berth: BerthProcess;
  /** Built as an index, but only its per-arch images reach the origin, as pause-amd64:3.9 and pause-arm64:3.9. */
  let pause: BuiltImage;
  let amd64: BuiltManifest;
  let arm64: BuiltManifest;

  before(async () => {
    work = await makeTempDir("multiarch-synth");
    pause = await buildImage(join(work.path, "layout"), { ref: "pause", platforms: [AMD64, ARM64], archRefs: true, seed: "synthesized-index" });
    [amd64, arm64] = pause.manifests;
    origin = await OriginRegistry.start();
    for (const manifest of pause.manifests) {
      await skopeoCopy(manifest.source!, `docker://${origin.host}/pause-${manifest.platform.architecture}:3.9`, { preserveDigests: true });
    }
    berth = await BerthProcess.start({ config: mirroring(origin) });
  });
  after(async () => {
    await berth?.close();
    await origin?.close();
    await work?.remove();
  });

  it("answers pause:3.9 with an OCI index of the per-arch manifests, annotated berth.synthesized", async () => {
    const response = await fetchManifest(berth.url, "origin/pause/manifests/3.9", CONTAINERD_ACCEPT);

    assert.equal(response.status, 200);
    assert.equal(response.mediaType, MEDIA_TYPES.ociIndex);
    assert.equal(response.digest, sha256Of(response.bytes));
    assert.match(response.headers.get("berth-fallback") ?? "", /^synthesized-index; /);
    const index = parseIndex(response);
    assert.equal(index.mediaType, MEDIA_TYPES.ociIndex);
    assert.equal(index.annotations?.["berth.synthesized"], `index synthesized by berth from ${origin.host}/pause-amd64:3.9, ${origin.host}/pause-arm64:3.9`);
    assert.deepEqual(
      index.manifests.map((m) => ({ digest: m.digest, mediaType: m.mediaType, size: m.size, platform: m.platform })),
      [amd64, arm64].map((m) => ({ digest: m.digest, mediaType: m.mediaType, size: m.size, platform: m.platform })),
      "each entry is the origin's per-arch manifest, with the platform its config names",
    );
  });

  it("gives the synthesized index one digest through the prefix and ?ns=, and serves it by that digest on either route", async () => {
    const viaPrefix = await fetchManifest(berth.url, "origin/pause/manifests/3.9", CONTAINERD_ACCEPT);
    const viaNs = await fetchManifest(berth.url, `pause/manifests/3.9?ns=${origin.host}`, CONTAINERD_ACCEPT);

    assert.equal(viaNs.digest, viaPrefix.digest);
    assert.ok(viaNs.bytes.equals(viaPrefix.bytes));
    for (const path of [`pause/manifests/${viaPrefix.digest}?ns=${origin.host}`, `origin/pause/manifests/${viaNs.digest}`]) {
      const byDigest = await fetchManifest(berth.url, path, CONTAINERD_ACCEPT);
      assert.equal(byDigest.status, 200, path);
      assert.ok(byDigest.bytes.equals(viaPrefix.bytes), path);
    }
  });

  it("containerd pulls ORIGIN/pause:3.9 for linux/arm64 through its hosts.toml mirror: the synthesized index and pause-arm64's image", async (t) => {
    const containerd = await Containerd.start();
    t.after(() => containerd.close());
    await containerd.setHosts(origin.host, { server: origin.url, mirrors: [{ url: berth.url }] });
    const synthesized = await fetchManifest(berth.url, `pause/manifests/3.9?ns=${origin.host}`, CONTAINERD_ACCEPT);

    const pulled = await containerd.pull(`${origin.host}/pause:3.9`, { platform: "linux/arm64" });

    assert.equal(pulled.digest, synthesized.digest);
    assert.equal(pulled.mediaType, MEDIA_TYPES.ociIndex);
    const arm64Image = [arm64.digest, arm64.config.digest, ...arm64.layers.map((l) => l.digest)];
    assert.deepEqual([...pulled.contentDigests].sort(), [synthesized.digest!, ...arm64Image].sort(), "the index and the arm64 image, nothing of amd64");
    const direct = (await origin.accessLog()).filter((e) => e.userAgent.startsWith("containerd/"));
    assert.deepEqual(direct, [], "containerd never had to go to the origin itself");
  });

  it("skopeo copies origin/pause:3.9 for arm64 through the prefix: the origin's pause-arm64:3.9, every blob verified", async () => {
    const origins = await copyToDir(`docker://${origin.host}/pause-arm64:3.9`);

    const copied = await copyToDir(`docker://${berth.host}/origin/pause:3.9`, { overrideArch: "arm64" });

    assert.equal(copied.manifestDigest, origins.manifestDigest);
    assert.equal(copied.manifestDigest, arm64.digest);
    for (const [name, contentDigest] of copied.blobs) assert.equal(contentDigest, name, `blob ${name} content`);
    assert.deepEqual([...copied.digests].sort(), [...origins.digests].sort());
  });

  it("gives an index-less Accept pause-amd64:3.9's manifest for pause:3.9, never the synthesized index", async () => {
    const response = await fetchManifest(berth.url, "origin/pause/manifests/3.9", INDEXLESS_ACCEPT);

    assert.equal(response.status, 200);
    assert.equal(response.digest, amd64.digest);
    assert.equal(sha256Of(response.bytes), amd64.digest);
    assert.equal(response.mediaType, amd64.mediaType);
    assert.equal(response.headers.get("berth-platform"), "linux/amd64");
  });

  it("keeps the synthesized index's digest across requests and a berth restart, and serves it by that digest", async () => {
    const first = await fetchManifest(berth.url, "origin/pause/manifests/3.9", CONTAINERD_ACCEPT);
    const second = await fetchManifest(berth.url, "origin/pause/manifests/3.9", CONTAINERD_ACCEPT);
    await berth.restart();
    const restarted = await fetchManifest(berth.url, "origin/pause/manifests/3.9", CONTAINERD_ACCEPT);
    const byDigest = await fetchManifest(berth.url, `origin/pause/manifests/${first.digest}`, CONTAINERD_ACCEPT);

    assert.equal(first.status, 200);
    assert.equal(second.digest, first.digest);
    assert.ok(second.bytes.equals(first.bytes));
    assert.equal(restarted.digest, first.digest);
    assert.ok(restarted.bytes.equals(first.bytes));
    assert.equal(byDigest.status, 200);
    assert.equal(byDigest.digest, first.digest);
    assert.ok(byDigest.bytes.equals(first.bytes));
  });

  it("never takes a pushed index dressed up as a synthesized one for pause's", async () => {
    const forged = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociIndex,
        manifests: [],
        annotations: { "berth.synthesized": "index synthesized by berth", "berth.synthesized.repository": `${origin.host}/pause` },
      }),
    );
    const pushed = await fetch(`${berth.url}/v2/forger/app/manifests/v1`, { method: "PUT", body: new Uint8Array(forged), headers: { "content-type": MEDIA_TYPES.ociIndex } });
    assert.equal(pushed.status, 201);
    const digest = sha256Of(forged);
    for (const path of [`origin/pause/manifests/${digest}`, `pause/manifests/${digest}?ns=${origin.host}`]) {
      const response = await fetchManifest(berth.url, path, CONTAINERD_ACCEPT);
      assert.equal(response.status, 404, path);
      assert.equal(errorCode(response), "MANIFEST_UNKNOWN");
    }
  });

  it("keeps a synthesized index through content collection, as cached content", async (t) => {
    const collecting = await BerthProcess.start({ config: mirroring(origin, {}, { cache: { minAge: "0s", collectInterval: "0s" } }) });
    t.after(() => collecting.close());
    const synthesized = await fetchManifest(collecting.url, "origin/pause/manifests/3.9", CONTAINERD_ACCEPT);
    assert.equal(synthesized.status, 200);
    const collected = await fetch(`${collecting.url}/admin/gc`, { method: "POST" });
    assert.equal(collected.status, 200);
    const byDigest = await fetchManifest(collecting.url, `origin/pause/manifests/${synthesized.digest}`, CONTAINERD_ACCEPT);
    assert.equal(byDigest.status, 200);
    assert.ok(byDigest.bytes.equals(synthesized.bytes));
  });

  it("keeps serving the synthesized pause:3.9, same digest, from what it cached while the origin is down, with a Warning", async (t) => {
    const cold = await BerthProcess.start({ config: mirroring(origin) });
    t.after(() => cold.close());
    const containerd = await Containerd.start();
    t.after(() => containerd.close());
    await containerd.setHosts(origin.host, { server: origin.url, mirrors: [{ url: cold.url }] });
    const reference = `${origin.host}/pause:3.9`;
    const online = await containerd.pull(reference, { platform: "linux/arm64" });
    await containerd.removeImage(reference);
    await origin.stop();
    t.after(() => origin.restart());

    const pulled = await containerd.pull(reference, { platform: "linux/arm64" });
    const response = await fetchManifest(cold.url, `pause/manifests/3.9?ns=${origin.host}`, CONTAINERD_ACCEPT);

    assert.equal(pulled.digest, online.digest);
    assert.deepEqual([...pulled.contentDigests].sort(), [...online.contentDigests].sort());
    assert.equal(response.digest, online.digest);
    assert.match(response.headers.get("warning") ?? "", /upstream unavailable/);
  });

  it("answers pause:3.9 with 404 MANIFEST_UNKNOWN when the upstream's archFallback is off", async (t) => {
    const strict = await BerthProcess.start({ config: mirroring(origin, { archFallback: { enabled: false } }) });
    t.after(() => strict.close());

    const response = await fetchManifest(strict.url, "origin/pause/manifests/3.9", CONTAINERD_ACCEPT);

    assert.equal(response.status, 404);
    assert.equal(errorCode(response), "MANIFEST_UNKNOWN");
  });
});
