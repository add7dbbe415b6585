import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import type { BuiltImage, BuiltLayer } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { copyToDir, mirrorOf, mismatchedBlobs, ORIGIN_PREFIX, OriginPublisher, originBlobPath, storedBlobSize } from "./real-origin.js";

/** XORs one byte of a file in place: same length, different content. */
async function flipByte(path: string, position: number): Promise<void> {
  const file = await open(path, "r+");
  try {
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, position);
    byte[0] ^= 0xff;
    await file.write(byte, 0, 1, position);
  } finally {
    await file.close();
  }
}

describe("a layer corrupted in the origin's storage is never stored or served as valid", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let berth: BerthProcess;
  let corrupted: BuiltImage;
  let intact: BuiltImage;
  let badLayer: BuiltLayer;
  let badLayerPath: string;

  before(async () => {
    work = await makeTempDir("mirror-corrupt");
    origin = await OriginRegistry.start();
    const publisher = new OriginPublisher(join(work.path, "layout"), origin);
    corrupted = await publisher.publish("corrupt/app", "v1", { ref: "app", layers: [{ size: 3 * 1024 * 1024, compression: "none" }, { size: 4096 }], seed: "corrupt-app" });
    intact = await publisher.publish("corrupt/other", "v1", { ref: "other", layers: [{ size: 64 * 1024 }], seed: "corrupt-other" });
    berth = await BerthProcess.start({ config: mirrorOf(origin) });
    badLayer = corrupted.manifests[0].layers[0];
    badLayerPath = originBlobPath(origin, badLayer.digest);
    const sizeBefore = (await stat(badLayerPath)).size;
    await flipByte(badLayerPath, Math.floor(badLayer.size / 2));
    assert.equal((await stat(badLayerPath)).size, sizeBefore, "the corrupted layer keeps its length");
  });
  after(async () => {
    await berth?.close();
    await origin?.close();
    await work?.remove();
  });

  it("skopeo's pull through berth fails, and berth has nothing under the layer's digest", async () => {
    await assert.rejects(copyToDir(`docker://${berth.host}/${ORIGIN_PREFIX}/corrupt/app:v1`));

    assert.equal(await storedBlobSize(berth, badLayer.digest), undefined);
  });

  it("ctr's pull through its hosts.toml mirror fails too, and berth still has nothing under the digest", async (t) => {
    const containerd = await Containerd.start();
    t.after(() => containerd.close());
    await containerd.setHosts(origin.host, { server: origin.url, mirrors: [{ url: berth.url }] });

    // containerd falls back to the origin itself after the mirror, and verifies what that serves too.
    await assert.rejects(containerd.pull(`${origin.host}/corrupt/app:v1`), /digest|size|unexpected EOF/i);

    assert.equal(await storedBlobSize(berth, badLayer.digest), undefined);
  });

  it("a plain GET of the layer is cut short of its Content-Length, each time fetched from the origin anew", async () => {
    const path = `/v2/corrupt/app/blobs/${badLayer.digest}`;
    const before = await origin.count("GET", path);

    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await fetch(`${berth.url}/v2/${ORIGIN_PREFIX}/corrupt/app/blobs/${badLayer.digest}`);
      const body = await response.arrayBuffer().then(
        (bytes) => Buffer.from(bytes),
        (err: Error) => err,
      );
      assert.ok(body instanceof Error || body.length < badLayer.size, `attempt ${attempt}: never the complete corrupt body`);
    }

    assert.equal(await origin.count("GET", path), before + 2, "nothing was kept to serve from");
    assert.equal(await storedBlobSize(berth, badLayer.digest), undefined);
  });

  it("keeps serving other content: the image's intact layer and another image", async () => {
    const intactLayer = corrupted.manifests[0].layers[1];
    const response = await fetch(`${berth.url}/v2/${ORIGIN_PREFIX}/corrupt/app/blobs/${intactLayer.digest}`);
    assert.equal(response.status, 200);
    assert.equal(`sha256:${createHash("sha256").update(Buffer.from(await response.arrayBuffer())).digest("hex")}`, intactLayer.digest);

    const copy = await copyToDir(`docker://${berth.host}/${ORIGIN_PREFIX}/corrupt/other:v1`);
    assert.equal(copy.manifestDigest, intact.digest);
    assert.deepEqual(mismatchedBlobs(copy), []);
  });

  it("pulls the image once the origin's layer is repaired: a corrupt attempt leaves no trace", async () => {
    await flipByte(badLayerPath, Math.floor(badLayer.size / 2));

    const copy = await copyToDir(`docker://${berth.host}/${ORIGIN_PREFIX}/corrupt/app:v1`);

    assert.equal(copy.manifestDigest, corrupted.digest);
    assert.deepEqual(mismatchedBlobs(copy), []);
    assert.equal(await storedBlobSize(berth, badLayer.digest), badLayer.size);
  });
});
