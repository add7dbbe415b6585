import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { FakeUpstream } from "./fake-upstream.js";
import { startMirror } from "./mirror-fixture.js";

const sha256 = (bytes: Buffer) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

describe("default upstream", () => {
  let upstream: FakeUpstream;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  let upstreamLayer: Buffer;
  let upstreamLayerDigest: string;

  before(async () => {
    upstream = await new FakeUpstream().start();
    upstreamLayer = randomBytes(4096);
    upstreamLayerDigest = upstream.addBlob("team/app", upstreamLayer);
    upstream.addManifest("team/app", { schemaVersion: 2, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: upstreamLayerDigest, size: upstreamLayer.length }, layers: [] }, "v1");
    berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "up" }], { defaultUpstream: upstream.host });
  });
  after(async () => {
    await berth.stop();
    await upstream.stop();
  });

  it("serves a name no hosted repository has from the default upstream, without a prefix or ?ns=", async () => {
    const manifest = await fetch(`${berth.url}/v2/team/app/manifests/v1`);
    assert.equal(manifest.status, 200);
    const blob = await fetch(`${berth.url}/v2/team/app/blobs/${upstreamLayerDigest}`);
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), upstreamLayerDigest);
  });

  it("answers a push's blob HEAD from the hosted side, so the client uploads layers the upstream happens to have", async () => {
    const head = await fetch(`${berth.url}/v2/team/app/blobs/${upstreamLayerDigest}`, { method: "HEAD" });
    assert.equal(head.status, 404);
  });

  /** Pushes a config-only image to berth under `name:v1`; returns its manifest. */
  async function push(name: string): Promise<string> {
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
    const upload = await fetch(`${berth.url}/v2/${name}/blobs/uploads/?digest=${sha256(config)}`, { method: "POST", body: new Uint8Array(config), headers: { "content-type": "application/octet-stream" } });
    assert.equal(upload.status, 201);
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length }, layers: [] });
    const put = await fetch(`${berth.url}/v2/${name}/manifests/v1`, { method: "PUT", body: manifest, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
    assert.equal(put.status, 201);
    return manifest;
  }

  it("takes a push to a new name, then serves that name from the hosted repository", async () => {
    const manifest = await push("mine/app");
    const asked = upstream.requests.length;
    const pulled = await fetch(`${berth.url}/v2/mine/app/manifests/v1`);
    assert.equal(pulled.status, 200);
    assert.equal(await pulled.text(), manifest);
    assert.equal(upstream.requests.length, asked, "a hosted name never reaches the upstream");
  });

  it("routes a hosted name to the default upstream again once all its manifests are deleted", async () => {
    const upstreamManifest = upstream.addManifest("emptied/app", { schemaVersion: 2, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: upstreamLayerDigest, size: upstreamLayer.length }, layers: [] }, "v1");
    const hostedManifest = await push("emptied/app");
    assert.equal(await (await fetch(`${berth.url}/v2/emptied/app/manifests/v1`)).text(), hostedManifest);
    const deleted = await fetch(`${berth.url}/v2/emptied/app/manifests/${sha256(Buffer.from(hostedManifest))}`, { method: "DELETE" });
    assert.equal(deleted.status, 202);
    const pulled = await fetch(`${berth.url}/v2/emptied/app/manifests/v1`);
    assert.equal(pulled.status, 200);
    assert.equal(sha256(Buffer.from(await pulled.arrayBuffer())), upstreamManifest);
  });
});
