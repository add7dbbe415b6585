import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runCrashCampaign } from "./crash-campaign.js";

describe("crash safety (the bounded run; test/stress runs 200 kills)", () => {
  it("keeps the store consistent, acknowledged content intact and uploads resumable across 15 SIGKILLs mid-fetch, mid-upload, mid-push and mid-collection", async (t) => {
    const report = await runCrashCampaign({ kills: 15, collectionEvery: 5, seededBlobs: 1000, log: (line) => t.diagnostic(line) });
    t.diagnostic(`crash campaign: ${JSON.stringify(report)}`);
    assert.equal(report.kills, 15);
    assert.ok(report.acknowledgedBlobs > 0 && report.acknowledgedManifests > 0, "the workloads pushed content before the kills");
    assert.ok(report.inFlightAtKill.blobGet + report.inFlightAtKill.uploadPatch + report.inFlightAtKill.manifestPut > 0, "some kills landed mid-transfer");
  });
});
