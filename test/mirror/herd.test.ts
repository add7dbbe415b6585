import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { layoutBlobPath, type BuiltLayer } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { mirrorOf, ORIGIN_PREFIX, OriginPublisher, storedBlobSize } from "./real-origin.js";
import { sha256OfFileRange, streamBlob } from "../support/streamed-blob.js";

const CLIENTS = 20;
const HERD_LAYER_BYTES = 200 * 1024 * 1024;
const RANGED_LAYER_BYTES = 24 * 1024 * 1024;
const JOINED_LAYER_BYTES = 64 * 1024 * 1024;

describe("cold blobs through berth from a real origin", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let berth: BerthProcess;
  let publisher: OriginPublisher;

  before(async () => {
    work = await makeTempDir("mirror-herd");
    origin = await OriginRegistry.start();
    publisher = new OriginPublisher(join(work.path, "layout"), origin);
    berth = await BerthProcess.start({ config: mirrorOf(origin) });
  });
  after(async () => {
    await berth?.close();
    await origin?.close();
    await work?.remove();
  });

  const blobUrl = (repository: string, layer: BuiltLayer) => `${berth.url}/v2/${ORIGIN_PREFIX}/${repository}/blobs/${layer.digest}`;

  it(`${CLIENTS} clients GETting the same uncached 200 MiB blob at once cause one upstream GET, and each receives every byte`, async () => {
    const image = await publisher.publish("herd/big", "v1", { ref: "big", layers: [{ size: HERD_LAYER_BYTES, compression: "none" }], seed: "herd" });
    const layer = image.manifests[0].layers[0];

    const bodies = await Promise.all(Array.from({ length: CLIENTS }, () => streamBlob(blobUrl("herd/big", layer))));

    bodies.forEach((body, i) => {
      assert.equal(body.status, 200, `client ${i}`);
      assert.equal(body.length, layer.size, `client ${i}: length`);
      assert.equal(body.digest, layer.digest, `client ${i}: content`);
    });
    assert.equal(await origin.count("GET", `/v2/herd/big/blobs/${layer.digest}`), 1);
    assert.equal(await storedBlobSize(berth, layer.digest), layer.size, "berth stored the blob");
  });

  it("answers a cold Range: bytes=N- with 206 and the blob's bytes from N, and then serves the whole blob without another upstream GET", async () => {
    const image = await publisher.publish("herd/ranged", "v1", { ref: "ranged", layers: [{ size: RANGED_LAYER_BYTES, compression: "none" }], seed: "ranged" });
    const layer = image.manifests[0].layers[0];
    const start = 10 * 1024 * 1024 + 12_345;

    const ranged = await streamBlob(blobUrl("herd/ranged", layer), { Range: `bytes=${start}-` });

    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), `bytes ${start}-${layer.size - 1}/${layer.size}`);
    assert.equal(ranged.length, layer.size - start);
    assert.equal(ranged.digest, await sha256OfFileRange(layoutBlobPath(join(work.path, "layout"), layer.digest), start));
    const whole = await streamBlob(blobUrl("herd/ranged", layer));
    assert.equal(whole.digest, layer.digest);
    assert.equal(await origin.count("GET", `/v2/herd/ranged/blobs/${layer.digest}`), 1);
  });

  it("serves Range requests sent alongside a whole-blob GET of a cold blob, while one upstream GET fills it", async () => {
    const image = await publisher.publish("herd/joined", "v1", { ref: "joined", layers: [{ size: JOINED_LAYER_BYTES, compression: "none" }], seed: "joined" });
    const layer = image.manifests[0].layers[0];
    const layerPath = layoutBlobPath(join(work.path, "layout"), layer.digest);
    const last = layer.size - 1;
    const ranges = [
      { header: `bytes=${last - 5000}-`, start: last - 5000, end: last },
      { header: "bytes=1000-1099", start: 1000, end: 1099 },
      { header: `bytes=${40 * 1024 * 1024}-${40 * 1024 * 1024 + 999_999}`, start: 40 * 1024 * 1024, end: 40 * 1024 * 1024 + 999_999 },
      { header: "bytes=-4096", start: layer.size - 4096, end: last },
    ];

    const [whole, ...parts] = await Promise.all([streamBlob(blobUrl("herd/joined", layer)), ...ranges.map((r) => streamBlob(blobUrl("herd/joined", layer), { Range: r.header }))]);

    assert.equal(whole.digest, layer.digest);
    for (const [i, part] of parts.entries()) {
      const { header, start, end } = ranges[i];
      assert.equal(part.status, 206, header);
      assert.equal(part.headers.get("content-range"), `bytes ${start}-${end}/${layer.size}`, header);
      assert.equal(part.digest, await sha256OfFileRange(layerPath, start, end), header);
    }
    assert.equal(await origin.count("GET", `/v2/herd/joined/blobs/${layer.digest}`), 1);
  });
});
