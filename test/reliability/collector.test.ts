import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { FakeUpstream } from "../mirror/fake-upstream.js";
import { readFully, startMirror } from "../mirror/mirror-fixture.js";

const MiB = 1024 * 1024;

async function pushBlob(url: string, repository: string, bytes: Buffer): Promise<string> {
  const digest = Digest.of("sha256", bytes).toString();
  const response = await fetch(`${url}/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: "POST", body: new Uint8Array(bytes), headers: { "content-type": "application/octet-stream" } });
  assert.equal(response.status, 201);
  return digest;
}

async function pushImage(url: string, repository: string, tag: string): Promise<{ manifest: string; config: string; layer: string }> {
  const config = await pushBlob(url, repository, Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } })));
  const layerBytes = randomBytes(MiB);
  const layer = await pushBlob(url, repository, layerBytes);
  const configSize = (await fetch(`${url}/v2/${repository}/blobs/${config}`, { method: "HEAD" })).headers.get("content-length");
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: Number(configSize) },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size: layerBytes.length }],
  });
  const response = await fetch(`${url}/v2/${repository}/manifests/${tag}`, { method: "PUT", body, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  assert.equal(response.status, 201);
  return { manifest: response.headers.get("docker-content-digest")!, config, layer };
}

describe("content collection", () => {
  let upstream: FakeUpstream;
  let berth: Awaited<ReturnType<typeof startMirror>>;

  before(async () => {
    upstream = await new FakeUpstream().start();
    berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "fake" }], {
      cache: { maxSize: "2560KiB", collectInterval: 0, minAge: 0 },
    });
  });
  after(async () => {
    await berth.stop();
    await upstream.stop();
  });

  const inStore = async (digest: string) => (await berth.storage.blobs.size(Digest.parse(digest)!)) !== undefined;
  const pull = async (digest: string) => {
    const body = await readFully(await fetch(`${berth.url}/v2/fake/cached/app/blobs/${digest}`));
    assert.ok(Buffer.isBuffer(body));
    await berth.fills.settled(); // the client has every byte once they verified; storing them ends just after
    return body;
  };

  it("evicts the least recently used mirrored blob once the cache exceeds its cap, and refetches it on demand", async () => {
    const [a, b, c] = [randomBytes(MiB), randomBytes(MiB), randomBytes(MiB)].map((bytes) => upstream.addBlob("cached/app", bytes));
    await pull(a);
    await pull(b);
    await pull(c);
    await pull(a);
    const report = await berth.collector.run();
    assert.equal(report.evicted, 1);
    assert.ok(report.cacheBytes <= 2560 * 1024);
    assert.equal(await inStore(b), false, "b was used least recently");
    assert.equal(await inStore(a), true);
    assert.equal(await inStore(c), true);
    const before = upstream.count("GET", `/v2/cached/app/blobs/${b}`);
    await pull(b);
    assert.equal(upstream.count("GET", `/v2/cached/app/blobs/${b}`), before + 1);
  });

  it("never evicts a blob while it is being read", async () => {
    // Larger than socket buffers can hold, so berth is still reading the file.
    const big = upstream.addBlob("cached/app", randomBytes(64 * MiB));
    await pull(big);
    const reading = await fetch(`${berth.url}/v2/fake/cached/app/blobs/${big}`);
    const reader = reading.body!.getReader();
    await reader.read();
    const report = await berth.collector.run();
    assert.equal(await inStore(big), true, "a blob being served must stay");
    assert.ok(report.cacheBytes > 2560 * 1024);
    await reader.cancel();
  });

  it("keeps hosted content whatever the cap, and collects blobs nothing links any more", async () => {
    const image = await pushImage(berth.url, "hosted/app", "v1");
    const stray = await pushBlob(berth.url, "hosted/app", randomBytes(1000));
    const deleted = await fetch(`${berth.url}/v2/hosted/app/blobs/${stray}`, { method: "DELETE" });
    assert.equal(deleted.status, 202);
    const report = await berth.collector.run();
    assert.ok(report.deletedUnreferenced >= 1);
    assert.equal(await inStore(stray), false);
    for (const digest of [image.manifest, image.config, image.layer]) assert.equal(await inStore(digest), true);
    const manifest = await fetch(`${berth.url}/v2/hosted/app/manifests/v1`);
    assert.equal(manifest.status, 200);
    await manifest.arrayBuffer();
  });

  it("removes the per-digest visibility records an earlier berth kept, and keeps what a mirror still links", async () => {
    const digest = upstream.addBlob("legacy/app", randomBytes(1024));
    await fetch(`${berth.url}/v2/fake/legacy/app/blobs/${digest}`).then((response) => response.arrayBuffer());
    await berth.fills.settled();
    const legacy = join(berth.root, "mirrors", "fake", "legacy", "app", "_visibility");
    await mkdir(legacy, { recursive: true });
    await writeFile(join(legacy, digest.replace(":", "-")), JSON.stringify({ public: true }));
    await berth.collector.run();
    await assert.rejects(readdir(legacy), { code: "ENOENT" });
    assert.deepEqual(await readdir(join(berth.root, "mirrors", "fake", "legacy", "app", "_layers", "sha256")), [digest.slice("sha256:".length)]);
  });

  it("leaves no temp files behind", async () => {
    assert.deepEqual(await readdir(join(berth.root, "_tmp")), []);
  });
});

describe("abandoned uploads", () => {
  it("removes upload sessions older than storage.uploadMaxAge, keeping younger ones", async () => {
    const berth = await startMirror([], { storage: { uploadMaxAge: "1s" }, cache: { collectInterval: 0 } });
    try {
      const start = () => fetch(`${berth.url}/v2/hosted/app/blobs/uploads/`, { method: "POST" }).then((r) => r.headers.get("location")!);
      const old = await start();
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const young = await start();
      const report = await berth.collector.run();
      assert.equal(report.expiredUploads, 1);
      assert.equal((await fetch(`${berth.url}${old}`)).status, 404);
      assert.equal((await fetch(`${berth.url}${young}`)).status, 204);
    } finally {
      await berth.stop();
    }
  });
});
