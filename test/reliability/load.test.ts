import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeLoad, runWarmMirrorLoad } from "./warm-mirror-load.js";

/** Generous: an idle berth is ~80 MiB; what matters is that 200 connections do not grow it without bound. */
const RSS_CEILING = 512 * 1024 * 1024;

describe("load against a warm cache (the bounded run; test/stress runs 1,000 connections for 60 s)", () => {
  it("serves 200 connections pulling at once for 5 s with no failed request, bounded memory and no descriptor leak", async (t) => {
    const report = await runWarmMirrorLoad(200, 5_000);
    t.diagnostic(describeLoad(report));
    assert.equal(report.failures, 0, report.failureSamples.join("\n"));
    assert.ok(report.requests > 200, "every connection pulled");
    assert.ok(report.peakFds >= report.fdsBefore + 200, `berth held the 200 connections at once (peak ${report.peakFds} fds)`);
    assert.ok(report.peakRssBytes < RSS_CEILING, `peak VmRSS ${report.peakRssBytes}`);
    assert.ok(report.fdsAfter <= report.fdsBefore, `descriptors ${report.fdsBefore} before, ${report.fdsAfter} after the connections closed`);
  });
});
