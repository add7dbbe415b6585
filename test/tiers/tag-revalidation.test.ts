import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { OriginRegistry } from "../support/origin-registry.js";
import { pushImage } from "../support/push-image.js";
import { ask, originRequests, startNode, startParent, type RunningBerth } from "./tier-fixture.js";

const NODE_TTL_MS = 1_000;

describe("a node's tag policy reaches the origin through the parent", () => {
  let origin: OriginRegistry;
  let parent: RunningBerth;
  let expiring: RunningBerth;
  let always: RunningBerth;
  const ns = () => `ns=${encodeURIComponent(origin.host)}`;

  before(async () => {
    origin = await OriginRegistry.start();
    // The parent alone would trust a resolved tag for an hour.
    parent = await startParent(origin, { tagPolicy: "IfNotPresent", tagTTL: "1h" });
    expiring = await startNode(parent, origin.host, { tagPolicy: "IfNotPresent", tagTTL: `${NODE_TTL_MS / 1000}s` });
    always = await startNode(parent, origin.host, { tagPolicy: "Always" });
  });
  after(async () => {
    await always?.stop();
    await expiring?.stop();
    await parent?.stop();
    await origin?.close();
  });

  it("serves a moved tag's new digest once the node's tagTTL ends, though the parent's own TTL has not", async () => {
    const first = await pushImage(origin.url, "ttl/app", "v1");
    assert.equal((await ask(expiring, "HEAD", "ttl/app/manifests/v1", ns())).digest, first.manifest);
    const moved = await pushImage(origin.url, "ttl/app", "v1");
    assert.equal((await ask(expiring, "HEAD", "ttl/app/manifests/v1", ns())).digest, first.manifest, "within the node's TTL, its record stands");
    await sleep(NODE_TTL_MS + 200);
    assert.equal((await ask(expiring, "HEAD", "ttl/app/manifests/v1", ns())).digest, moved.manifest, "the node's revalidation reached the origin's answer");
  });

  it("asks the origin on every request to a node whose policy is Always", async () => {
    const first = await pushImage(origin.url, "always/app", "v1");
    const since = (await origin.accessLog()).length;
    for (let i = 0; i < 3; i++) assert.equal((await ask(always, "HEAD", "always/app/manifests/v1", ns())).digest, first.manifest);
    const heads = (await originRequests(origin, "always/app", since)).filter((r) => r === "HEAD /v2/always/app/manifests/v1 200");
    assert.equal(heads.length, 3, "one origin HEAD per request");
    const moved = await pushImage(origin.url, "always/app", "v1");
    assert.equal((await ask(always, "HEAD", "always/app/manifests/v1", ns())).digest, moved.manifest);
  });

  it("lets any client of the parent ask for a fresh answer with Cache-Control, and only for tags", async () => {
    const first = await pushImage(origin.url, "direct/app", "v1");
    const headers = (cacheControl?: string) => ({ Accept: "application/vnd.oci.image.manifest.v1+json", ...(cacheControl ? { "Cache-Control": cacheControl } : {}) });
    const digestOf = async (cacheControl?: string, reference = "v1") =>
      (await fetch(`${parent.url}/v2/direct/app/manifests/${reference}?${ns()}`, { method: "HEAD", headers: headers(cacheControl) })).headers.get("docker-content-digest");
    assert.equal(await digestOf(), first.manifest);
    const moved = await pushImage(origin.url, "direct/app", "v1");
    assert.equal(await digestOf(), first.manifest, "the parent's own TTL");
    assert.equal(await digestOf("max-age=3600"), first.manifest, "a record younger than max-age stands");
    assert.equal(await digestOf("max-age=abc, private"), first.manifest, "what does not parse is ignored");
    assert.equal(await digestOf("max-age=0"), moved.manifest);
    const since = (await origin.accessLog()).length;
    assert.equal(await digestOf("no-cache", first.manifest), first.manifest);
    assert.deepEqual(await originRequests(origin, "direct/app", since), [], "a digest is immutable: no-cache asks nothing");
  });
});
