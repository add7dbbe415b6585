import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { readConfigDocument } from "../../config/load.js";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import { buildImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { Podman } from "../support/podman.js";
import { skopeoCopy } from "../support/skopeo.js";
import { createBucket, swiftS3 } from "../support/swift-s3.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { AMD64, ARM64, closedLoopbackPort, copyToDir, mismatchedBlobs, ORIGIN_PREFIX, OriginPublisher } from "../mirror/real-origin.js";

const EXAMPLE = resolve(__dirname, "../../../config/berth.s3.example.yaml");

describe("berth started with config/berth.s3.example.yaml, on Swift's s3api", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let berth: BerthProcess;
  let publisher: OriginPublisher;

  before(async () => {
    work = await makeTempDir("s3-example");
    origin = await OriginRegistry.start();
    publisher = new OriginPublisher(join(work.path, "origin-layout"), origin);
    const s3 = await swiftS3();
    // The example as shipped, but for this test run's endpoint and a bucket of its own, and the origin as an upstream.
    const config = await readConfigDocument(EXAMPLE);
    const storage = config.storage as { s3: Record<string, unknown> };
    storage.s3 = { ...storage.s3, endpoint: s3.endpoint, bucket: await createBucket(s3, "example") };
    config.upstreams = [...(config.upstreams as object[]), { host: origin.host, url: origin.url, prefix: ORIGIN_PREFIX }];
    berth = await BerthProcess.start({ config, env: { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey } });
  });
  after(async () => {
    await berth?.close();
    await origin?.close();
    await work?.remove();
  });

  it("takes a multi-arch image from skopeo copy --all and gives it back byte for byte", async () => {
    const image = await buildImage(join(work.path, "layout"), { ref: "app", platforms: [AMD64, ARM64], layers: [{ size: 6 * 1024 * 1024 }, { size: 4096 }], seed: "s3-example" });
    await skopeoCopy(image.source, `docker://${berth.host}/team/app:v1`, { all: true, preserveDigests: true });
    const copy = await copyToDir(`docker://${berth.host}/team/app:v1`);
    assert.equal(copy.manifestDigest, image.digest);
    assert.deepEqual([...copy.digests].sort(), [...image.digests].sort());
    assert.deepEqual(mismatchedBlobs(copy), []);
  });

  it("serves ctr and podman pulling through it as a mirror", async (t) => {
    const image = await publisher.publish("mirrored/app", "v1", { ref: "mirrored", platforms: [AMD64, ARM64], layers: [{ size: 64 * 1024 }], seed: "s3-example-mirror" });
    const containerd = await Containerd.start();
    t.after(() => containerd.close());
    await containerd.setHosts(origin.host, { server: origin.url, mirrors: [{ url: berth.url }] });
    const pulled = await containerd.pull(`${origin.host}/mirrored/app:v1`, { platform: "linux/arm64/v8" });
    assert.equal(pulled.digest, image.digest);

    const unreachable = await closedLoopbackPort();
    const podman = await Podman.create([{ location: unreachable, mirrors: [{ location: `${berth.host}/${ORIGIN_PREFIX}` }] }]);
    t.after(() => podman.close());
    const viaPodman = await podman.pull(`${unreachable}/mirrored/app:v1`, { platform: "linux/amd64" });
    assert.equal(viaPodman.digest, image.digest);
    assert.equal(viaPodman.architecture, "amd64");
  });
});
