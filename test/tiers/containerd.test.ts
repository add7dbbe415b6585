import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { bcryptHash } from "../auth/token-fixture.js";
import { Containerd } from "../support/containerd.js";
import type { BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { AMD64, ARM64, blobPaths, closedLoopbackPort, getCounts, OriginPublisher, requestsNotFromBerth } from "../mirror/real-origin.js";
import { PREFIX, startNode, startParent, writeDockerConfig, type RunningBerth } from "./tier-fixture.js";

describe("containerd pulling through a node berth whose parent is the cluster tier", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let parent: RunningBerth;
  let node: RunningBerth;
  let containerd: Containerd;
  let image: BuiltImage;
  /** The registry images name: nothing listens there, so only the mirror can serve them. */
  let registry: string;
  let parentDown = false;

  before(async () => {
    work = await makeTempDir("tiers-containerd");
    origin = await OriginRegistry.start();
    image = await new OriginPublisher(join(work.path, "layout"), origin).publish("team/app", "v1", {
      ref: "app",
      platforms: [AMD64, ARM64],
      layers: [{ size: 64 * 1024 }],
      seed: "tiers-containerd",
    });
    registry = await closedLoopbackPort();
    parent = await startParent(
      origin,
      {},
      {
        auth: {
          mode: "token",
          token: { lifetime: "5m" },
          nodes: [{ username: "node-1", passwordHash: bcryptHash("node-1-secret") }],
          // On the canonical name PREFIX/REPO, whichever way (?ns=) the node addresses it.
          policy: [{ roles: ["node"], repositories: [`${PREFIX}/team/**`], actions: ["pull"] }],
        },
      },
      registry,
    );
    const credentials = await writeDockerConfig(join(work.path, "parent.json"), new URL(parent.url).host, "node-1", "node-1-secret");
    // Always: every pull asks the parent, so the pull after it stopped needs the node's cache.
    node = await startNode(parent, registry, { tagPolicy: "Always" }, { cluster: { credentials: [credentials] } });
    containerd = await Containerd.start();
    await containerd.setHosts(registry, { server: `http://${registry}`, mirrors: [{ url: node.url }] });
  });
  after(async () => {
    await containerd?.close();
    await node?.stop();
    if (parentDown) await rm(parent.root, { recursive: true, force: true });
    else await parent?.stop();
    await origin?.close();
    await work?.remove();
  });

  it("pulls an image by its registry's name through the node (?ns=) and the parent (token mode), one origin GET per blob", async () => {
    const published = (await origin.accessLog()).length;
    const pulled = await containerd.pull(`${registry}/team/app:v1`, { platform: "linux/arm64" });
    assert.equal(pulled.digest, image.digest);
    const arm64 = image.manifests[1];
    for (const digest of [arm64.digest, arm64.config.digest, ...arm64.layers.map((l) => l.digest)]) assert.ok(pulled.contentDigests.includes(digest), digest);
    const paths = blobPaths("team/app", { ...image, manifests: [arm64] });
    assert.deepEqual(await getCounts(origin, paths), paths.map(() => 1));
    assert.deepEqual(await requestsNotFromBerth(origin, "team/app", published), [], "only berth reached the origin");
  });

  it("pulls it again from the node's cache while the parent is down", async () => {
    await containerd.removeImage(`${registry}/team/app:v1`);
    await parent.close();
    parentDown = true;
    const pulled = await containerd.pull(`${registry}/team/app:v1`, { platform: "linux/arm64" });
    assert.equal(pulled.digest, image.digest);
  });
});
