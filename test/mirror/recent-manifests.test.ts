import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { RecentManifests } from "../../server/registry/recent-manifests.js";

const manifest = (text: string) => {
  const bytes = Buffer.from(text);
  return { digest: Digest.of("sha256", bytes), mediaType: "application/vnd.oci.image.manifest.v1+json", bytes };
};

describe("RecentManifests", () => {
  it("keeps a manifest per repository, and forgets it on request", () => {
    const recent = new RecentManifests();
    const m = manifest("a");
    recent.remember("team/app", m);
    assert.deepEqual(recent.get("team/app", m.digest), m);
    assert.equal(recent.get("team/other", m.digest), undefined);
    recent.forget("team/app", m.digest);
    assert.equal(recent.get("team/app", m.digest), undefined);
  });

  it("drops the least recently used once over its memory budget", () => {
    const recent = new RecentManifests(64);
    const fillers = Array.from({ length: 16 }, (_, i) => manifest(`f${String(i).padStart(3, "0")}`)); // 4 bytes each
    for (const m of fillers) recent.remember("r", m);
    assert.ok(recent.get("r", fillers[0].digest)); // 64 bytes: all kept; the first is now the most recent
    const extra = manifest("last");
    recent.remember("r", extra);
    assert.ok(recent.get("r", extra.digest));
    assert.ok(recent.get("r", fillers[0].digest));
    assert.equal(recent.get("r", fillers[1].digest), undefined);
    assert.ok(recent.get("r", fillers[2].digest));
  });

  it("never keeps a manifest larger than a sixteenth of its budget", () => {
    const recent = new RecentManifests(64);
    const big = manifest("x".repeat(5));
    recent.remember("r", big);
    assert.equal(recent.get("r", big.digest), undefined);
  });
});
