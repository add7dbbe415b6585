import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runCrashCampaign } from "../reliability/crash-campaign.js";

describe("crash safety under 200 SIGKILLs", () => {
  it("keeps the store consistent, acknowledged content intact and uploads resumable across 200 kills mid-fetch, mid-upload, mid-push and mid-collection", async (t) => {
    const report = await runCrashCampaign({ kills: 200, collectionEvery: 10, seededBlobs: 2000, log: (line) => t.diagnostic(line) });
    t.diagnostic(`crash campaign: ${JSON.stringify(report)}`);
    assert.equal(report.kills, 200);
    for (const [activity, kills] of Object.entries(report.inFlightAtKill)) assert.ok(kills > 0, `no kill landed mid-${activity}`);
  });
});
