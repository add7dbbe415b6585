import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { describeLoad, runWarmMirrorLoad } from "../reliability/warm-mirror-load.js";

/** Generous: what matters is that 1,000 connections for a minute do not grow berth without bound. */
const RSS_CEILING = 1024 * 1024 * 1024;

describe("load against a warm cache: 1,000 connections for 60 s", () => {
  it("serves 1,000 connections pulling at once for 60 s with no failed request, bounded memory and no descriptor leak", async (t) => {
    const report = await runWarmMirrorLoad(1000, 60_000);
    t.diagnostic(describeLoad(report));
    t.diagnostic(`requests by kind: ${JSON.stringify(report.byKind)}`);
    assert.equal(report.failures, 0, report.failureSamples.join("\n"));
    assert.ok(report.peakFds >= report.fdsBefore + 1000, `berth held the 1,000 connections at once (peak ${report.peakFds} fds)`);
    assert.ok(report.peakRssBytes < RSS_CEILING, `peak VmRSS ${report.peakRssBytes}`);
    assert.ok(report.fdsAfter <= report.fdsBefore, `descriptors ${report.fdsBefore} before, ${report.fdsAfter} after the connections closed`);
  });
});
