import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import type { BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { accessLogMark, AMD64, ARM64, copyToDir, getManifest, mirrorOf, mismatchedBlobs, ORIGIN_PREFIX, OriginPublisher, requestsFromBerth } from "./real-origin.js";

/** A hang guard, not a timing assertion: a refusal must come back, not wait on a dead upstream. */
const ANSWERS_AT_ONCE = { timeout: 30_000 };

describe("with the origin stopped, berth serves what it pulled before", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let always: BerthProcess;
  let expiring: BerthProcess;
  let containerd: Containerd;
  let single: BuiltImage;
  let multi: BuiltImage;
  const EXPIRING_TTL_MS = 1_000;
  let expiringResolvedAt = 0;

  before(async () => {
    work = await makeTempDir("mirror-offline");
    origin = await OriginRegistry.start();
    const publisher = new OriginPublisher(join(work.path, "layout"), origin);
    single = await publisher.publish("offline/single", "v1", { ref: "single", format: "docker", layers: [{ size: 32 * 1024 }, { size: 1024 }], seed: "offline-single" });
    multi = await publisher.publish("offline/multi", "v1", { ref: "multi", platforms: [AMD64, ARM64], layers: [{ size: 16 * 1024 }], seed: "offline-multi" });
    always = await BerthProcess.start({ config: mirrorOf(origin, { tagPolicy: "Always" }) });
    expiring = await BerthProcess.start({ config: mirrorOf(origin, { tagPolicy: "IfNotPresent", tagTTL: `${EXPIRING_TTL_MS / 1000}s` }) });
    containerd = await Containerd.start();
    await containerd.setHosts(origin.host, { server: origin.url, mirrors: [{ url: always.url }] });

    for (const name of ["single", "multi"]) await copyToDir(`docker://${always.host}/${ORIGIN_PREFIX}/offline/${name}:v1`);
    for (const name of ["single", "multi"]) {
      await containerd.pull(`${origin.host}/offline/${name}:v1`, { platform: "linux/amd64" });
      await containerd.removeImage(`${origin.host}/offline/${name}:v1`);
    }
    assert.equal((await getManifest(expiring, `${ORIGIN_PREFIX}/offline/multi/manifests/v1`)).digest, multi.digest);
    expiringResolvedAt = Date.now();

    await origin.stop();
  });
  after(async () => {
    await containerd?.close();
    await expiring?.close();
    await always?.close();
    await origin?.close();
    await work?.remove();
  });

  it("skopeo copies both images again with the origin's digests and content", async () => {
    for (const [name, image] of [["single", single], ["multi", multi]] as const) {
      const copy = await copyToDir(`docker://${always.host}/${ORIGIN_PREFIX}/offline/${name}:v1`);
      assert.equal(copy.manifestDigest, image.digest, name);
      assert.deepEqual([...copy.digests].sort(), [...image.digests].sort(), name);
      assert.deepEqual(mismatchedBlobs(copy), [], name);
    }
  });

  it("ctr pulls both images again through its hosts.toml mirror, their registry being down", async () => {
    for (const [name, image] of [["single", single], ["multi", multi]] as const) {
      const amd64 = image.manifests[0];
      const pulled = await containerd.pull(`${origin.host}/offline/${name}:v1`, { platform: "linux/amd64" });
      assert.equal(pulled.digest, image.digest, name);
      for (const digest of [amd64.digest, amd64.config.digest, ...amd64.layers.map((l) => l.digest)]) assert.ok(pulled.contentDigests.includes(digest), `${name}: ${digest}`);
    }
  });

  it("answers a tag under policy Always with the cached digest and a Warning naming the unavailable upstream", async () => {
    const answer = await getManifest(always, `${ORIGIN_PREFIX}/offline/multi/manifests/v1`);

    assert.equal(answer.status, 200);
    assert.equal(answer.digest, multi.digest);
    assert.equal(answer.warnings.length, 1, answer.warnings.join(" | "));
    assert.match(answer.warnings[0], /^299 - ".*unavailable.*"$/);
    assert.ok(answer.warnings[0].includes(origin.host), answer.warnings[0]);
  });

  it("answers a tag whose IfNotPresent TTL has expired with the cached digest and a Warning", async () => {
    await sleep(Math.max(0, expiringResolvedAt + EXPIRING_TTL_MS + 100 - Date.now()));

    const answer = await getManifest(expiring, `${ORIGIN_PREFIX}/offline/multi/manifests/v1`);

    assert.equal(answer.status, 200);
    assert.equal(answer.digest, multi.digest);
    assert.equal(answer.warnings.length, 1, answer.warnings.join(" | "));
    assert.ok(answer.warnings[0].includes(origin.host), answer.warnings[0]);
  });

  it("refuses an image it never pulled with 503 UNAVAILABLE, Retry-After and the upstream's name, at once", ANSWERS_AT_ONCE, async () => {
    for (const berth of [always, expiring]) {
      const answer = await getManifest(berth, `${ORIGIN_PREFIX}/offline/never-pulled/manifests/v1`);
      assert.equal(answer.status, 503);
      assert.equal(answer.code, "UNAVAILABLE");
      assert.match(answer.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
      assert.ok(answer.message?.includes(origin.host), answer.message);
    }
  });

  it("makes skopeo fail at once on an image it never pulled, saying the service is unavailable", ANSWERS_AT_ONCE, async () => {
    await assert.rejects(copyToDir(`docker://${always.host}/${ORIGIN_PREFIX}/offline/never-pulled:v1`), /unavailable/i);
  });

  it("still serves both images after berth itself restarts: tags, manifests and blobs were kept on disk", async () => {
    await always.restart();

    for (const [name, image] of [["single", single], ["multi", multi]] as const) {
      const copy = await copyToDir(`docker://${always.host}/${ORIGIN_PREFIX}/offline/${name}:v1`);
      assert.equal(copy.manifestDigest, image.digest, name);
      assert.deepEqual(mismatchedBlobs(copy), [], name);
    }
  });
});

describe("tag policies against a real origin, after the tag moves to new content", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let publisher: OriginPublisher;

  before(async () => {
    work = await makeTempDir("mirror-policies");
    origin = await OriginRegistry.start();
    publisher = new OriginPublisher(join(work.path, "layout"), origin);
  });
  after(async () => {
    await origin?.close();
    await work?.remove();
  });

  /** `<repository>:v1` is the first image; the second waits under `:next` in the same repository, for `moveTag`. */
  async function publishBoth(repository: string): Promise<{ first: BuiltImage; second: BuiltImage; moveTag: () => Promise<void> }> {
    const first = await publisher.publish(repository, "v1", { ref: `${repository}-first`, layers: [{ size: 2048 }], seed: `${repository}-first` });
    const second = await publisher.publish(repository, "next", { ref: `${repository}-second`, layers: [{ size: 2048 }], seed: `${repository}-second` });
    return { first, second, moveTag: () => publisher.retag(repository, "v1", second) };
  }

  const tagPath = (repository: string) => `${ORIGIN_PREFIX}/${repository}/manifests/v1`;
  /** berth's requests for the tag itself (a HEAD per revalidation). */
  const tagRequests = async (repository: string) => (await requestsFromBerth(origin, repository)).filter((r) => r.endsWith("/manifests/v1"));

  it("Always sees the moved tag's new digest at once", async (t) => {
    const { first, second, moveTag } = await publishBoth("policy/always");
    const berth = await BerthProcess.start({ config: mirrorOf(origin, { tagPolicy: "Always" }) });
    t.after(() => berth.close());

    assert.equal((await getManifest(berth, tagPath("policy/always"))).digest, first.digest);
    await moveTag();
    assert.equal((await getManifest(berth, tagPath("policy/always"))).digest, second.digest);
  });

  it("IfNotPresent with tagTTL 3s keeps the cached digest without asking the origin until the TTL ends, then sees the new one", async (t) => {
    const { first, second, moveTag } = await publishBoth("policy/ttl");
    const berth = await BerthProcess.start({ config: mirrorOf(origin, { tagPolicy: "IfNotPresent", tagTTL: "3s" }) });
    t.after(() => berth.close());

    assert.equal((await getManifest(berth, tagPath("policy/ttl"))).digest, first.digest);
    const resolvedAt = Date.now();
    await moveTag();
    assert.equal((await getManifest(berth, tagPath("policy/ttl"))).digest, first.digest, "within the TTL");
    assert.equal((await tagRequests("policy/ttl")).length, 1, "within the TTL berth asked the origin about the tag only once");
    await sleep(Math.max(0, resolvedAt + 3_100 - Date.now()));
    assert.equal((await getManifest(berth, tagPath("policy/ttl"))).digest, second.digest, "after the TTL");
  });

  it("IfNotPresent with tagTTL 0 never revalidates a tag it resolved", async (t) => {
    const { first, moveTag } = await publishBoth("policy/forever");
    const berth = await BerthProcess.start({ config: mirrorOf(origin, { tagPolicy: "IfNotPresent", tagTTL: 0 }) });
    t.after(() => berth.close());

    assert.equal((await getManifest(berth, tagPath("policy/forever"))).digest, first.digest);
    await moveTag();
    await sleep(3_100);
    assert.equal((await getManifest(berth, tagPath("policy/forever"))).digest, first.digest);
    assert.equal((await tagRequests("policy/forever")).length, 1, "berth asked the origin about the tag once, when it first resolved it");
  });

  it("Never serves what an earlier run cached, never the moved tag, refuses the uncached, and never contacts the origin", async (t) => {
    const { first, moveTag } = await publishBoth("policy/never");
    const storageDir = join(work.path, "never-storage");
    const seeding = await BerthProcess.start({ config: mirrorOf(origin), storageDir });
    await copyToDir(`docker://${seeding.host}/${ORIGIN_PREFIX}/policy/never:v1`);
    await seeding.close();
    await moveTag();
    const offline = await accessLogMark(origin);
    const berth = await BerthProcess.start({ config: mirrorOf(origin, { tagPolicy: "Never" }), storageDir });
    t.after(() => berth.close());

    const copy = await copyToDir(`docker://${berth.host}/${ORIGIN_PREFIX}/policy/never:v1`);
    assert.equal(copy.manifestDigest, first.digest);
    assert.deepEqual(mismatchedBlobs(copy), []);
    const uncachedTag = await getManifest(berth, `${ORIGIN_PREFIX}/policy/never/manifests/next`);
    assert.equal(uncachedTag.status, 404);
    assert.equal(uncachedTag.code, "MANIFEST_UNKNOWN");
    const uncachedName = await getManifest(berth, `${ORIGIN_PREFIX}/policy/never-pulled/manifests/v1`);
    assert.equal(uncachedName.code, "MANIFEST_UNKNOWN");
    const fromBerth = (await origin.accessLog()).slice(offline).filter((e) => e.userAgent === "berth");
    assert.deepEqual(fromBerth, [], "under Never berth sent the origin nothing");
  });
});
