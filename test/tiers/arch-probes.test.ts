import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { AMD64, ARM64, OriginPublisher } from "../mirror/real-origin.js";
import { ask, originRequests, startNode, startParent, type RunningBerth } from "./tier-fixture.js";

describe("-$(ARCH) fallbacks through tiers: probed once, at the parent", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let parent: RunningBerth;
  let node: RunningBerth;
  let image: BuiltImage;
  const ns = () => `ns=${encodeURIComponent(origin.host)}`;

  before(async () => {
    work = await makeTempDir("tiers-arch");
    origin = await OriginRegistry.start();
    image = await new OriginPublisher(join(work.path, "layout"), origin).publish("arch/pause", "3.9", {
      ref: "pause",
      platforms: [AMD64, ARM64],
      layers: [{ size: 4 * 1024 }],
      seed: "tiers-arch",
    });
    parent = await startParent(origin);
    node = await startNode(parent, origin.host);
  });
  after(async () => {
    await node?.stop();
    await parent?.stop();
    await origin?.close();
    await work?.remove();
  });

  /** The origin requests one answer cost, and the answer. */
  const cost = async (berth: RunningBerth, path: string) => {
    const since = (await origin.accessLog()).length;
    const answer = await ask(berth, "HEAD", path, ns());
    return { answer, requests: await originRequests(origin, "arch", since) };
  };

  it("costs the origin for a missing tag through node and parent what the parent alone costs", async () => {
    const alone = await cost(parent, "arch/pause/manifests/missing-1");
    assert.equal(alone.answer.status, 404);
    assert.ok(alone.requests.length > 1, `the parent probes the per-architecture names: ${alone.requests.join(", ")}`);
    const tiered = await cost(node, "arch/pause/manifests/missing-2");
    assert.equal(tiered.answer.status, 404);
    assert.deepEqual(
      tiered.requests.map((r) => r.replace("missing-2", "missing-N")),
      alone.requests.map((r) => r.replace("missing-1", "missing-N")),
    );
  });

  it("serves a node name-<arch>:tag from the parent's bridge to name:tag's index", async () => {
    const arm64 = await ask(node, "GET", "arch/pause-arm64/manifests/3.9", ns());
    assert.equal(arm64.status, 200);
    assert.equal(arm64.digest, image.manifests[1].digest);
  });
});
