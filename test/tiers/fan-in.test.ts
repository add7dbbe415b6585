import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { AMD64, ARM64, OriginPublisher } from "../mirror/real-origin.js";
import { ask, originRequests, pullThrough, startNode, startParent, type RunningBerth, PREFIX } from "./tier-fixture.js";

const NODES = 5;
const NODE_TAG_TTL_MS = 1_000;

describe("node tier → cluster tier → origin", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let parent: RunningBerth;
  let nodes: RunningBerth[] = [];
  let image: BuiltImage;
  let parentDown = false;

  before(async () => {
    work = await makeTempDir("tiers-fan-in");
    origin = await OriginRegistry.start();
    image = await new OriginPublisher(join(work.path, "layout"), origin).publish("team/app", "v1", {
      ref: "app",
      platforms: [AMD64, ARM64],
      layers: [{ size: 256 * 1024 }, { size: 4 * 1024 }],
      seed: "tiers-fan-in",
    });
    parent = await startParent(origin);
    nodes = await Promise.all(Array.from({ length: NODES }, () => startNode(parent, origin.host, { tagTTL: `${NODE_TAG_TTL_MS / 1000}s` })));
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    if (parentDown) await rm(parent.root, { recursive: true, force: true });
    else await parent?.stop();
    await origin?.close();
    await work?.remove();
  });

  it("costs the origin one GET per object for five nodes pulling one image at once", async () => {
    const pulls = await Promise.all(nodes.map((node) => pullThrough(node, origin.host, "team/app", "v1")));
    for (const pull of pulls) {
      assert.equal(pull.tag.digest, image.digest);
      assert.deepEqual([...pull.digests].sort(), [...image.digests].sort());
    }
    const requests = await originRequests(origin, "team/app");
    const gets = requests.filter((r) => r.startsWith("GET "));
    assert.deepEqual([...gets].sort(), [...new Set(gets)].sort(), `each object fetched once: ${gets.join(", ")}`);
    const fetched = new Set(gets.map((r) => r.split(" ")[1].split("/").at(-1)));
    for (const digest of image.digests) assert.ok(fetched.has(digest), `the parent fetched ${digest}`);
    assert.deepEqual(requests.filter((r) => r.startsWith("HEAD ")), ["HEAD /v2/team/app/manifests/v1 200"], "one tag lookup for every node");
  });

  it("addresses the parent by the original registry, so a path prefix and ?ns= reach the same repository", async () => {
    const byPrefix = await ask(nodes[0], "GET", `${PREFIX}/team/app/manifests/v1`);
    assert.equal(byPrefix.status, 200);
    assert.equal(byPrefix.digest, image.digest);
  });

  it("shows the parent as where the node fetches its upstream from, on its status page", async () => {
    const page = await (await fetch(`${nodes[0].url}/ui`)).text();
    assert.ok(page.includes(`<code>${parent.url}</code>`), "the parent's URL");
    assert.ok(!page.includes(`<code>${origin.url}</code>`), "not the registry's");
  });

  it("serves every node's cache while the parent is down, with a warning for a tag it could not revalidate", async () => {
    await parent.close();
    parentDown = true;
    await sleep(NODE_TAG_TTL_MS + 200);
    for (const node of nodes) {
      const pull = await pullThrough(node, origin.host, "team/app", "v1");
      assert.equal(pull.tag.digest, image.digest);
      assert.ok(pull.tag.warnings.some((w) => /unavailable; serving the cached digest of v1/.test(w)), pull.tag.warnings.join(" | "));
      assert.deepEqual([...pull.digests].sort(), [...image.digests].sort());
    }
    const unknown = await ask(nodes[0], "HEAD", "team/app/manifests/v2", `ns=${encodeURIComponent(origin.host)}`);
    assert.equal(unknown.status, 503, "a tag no node cached cannot be served while the parent is down");
    assert.ok(unknown.headers.get("retry-after"));
  });
});
