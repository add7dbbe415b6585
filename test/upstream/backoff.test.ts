import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LocalUpstreamBackoff } from "../../server/upstream/backoff.js";

describe("LocalUpstreamBackoff", () => {
  it("doubles from 10 s up to 300 s, like the kubelet's ImagePullBackOff", () => {
    let now = 0;
    const backoff = new LocalUpstreamBackoff(undefined, () => now);
    const waits = Array.from({ length: 8 }, () => {
      const wait = backoff.failure("origin/app");
      now += wait;
      return wait / 1000;
    });
    assert.deepEqual(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
  });

  it("recovers on the first success", () => {
    let now = 0;
    const backoff = new LocalUpstreamBackoff(undefined, () => now);
    backoff.failure("k");
    backoff.failure("k");
    assert.ok(backoff.remaining("k") > 0);
    backoff.success("k");
    assert.equal(backoff.remaining("k"), 0);
    assert.equal(backoff.failure("k"), 10_000);
  });

  it("honours an upstream's Retry-After over the schedule", () => {
    let now = 1000;
    const backoff = new LocalUpstreamBackoff(undefined, () => now);
    assert.equal(backoff.failure("k", 42_000), 42_000);
    now += 41_000;
    assert.equal(backoff.remaining("k"), 1000);
  });

  it("keeps keys apart so one failing repository does not block another", () => {
    const backoff = new LocalUpstreamBackoff(undefined, () => 0);
    backoff.failure("origin/a");
    assert.equal(backoff.remaining("origin/b"), 0);
  });
});
