import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runCrashCampaign } from "../reliability/crash-campaign.js";

describe("crash safety of three replicas under 100 SIGKILLs", () => {
  it("keeps the bucket consistent, acknowledged content intact, uploads resumable and the spared replicas' pulls whole across 100 kills of one replica at a time, mid-fetch, mid-upload, mid-push and mid-collection", async (t) => {
    const report = await runCrashCampaign({ kills: 100, collectionEvery: 10, seededBlobs: 2000, replicas: 3, log: (line) => t.diagnostic(line) });
    t.diagnostic(`crash campaign on replicas: ${JSON.stringify(report)}`);
    assert.equal(report.kills, 100);
    for (const activity of ["blobGet", "uploadPatch", "blobPost", "manifestPut"] as const) assert.ok(report.inFlightAtKill[activity] > 0, `no kill landed mid-${activity}`);
  });
});
