import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runCrashCampaign } from "./crash-campaign.js";

// The bounded campaign across three replicas on one bucket; the long one is test/stress/crash-safety-on-replicas.stress.ts.
describe("crash safety of three replicas on one bucket", () => {
  it("keeps the bucket consistent, acknowledged content intact on every replica, hopping uploads resumable and the spared replicas' pulls whole across kills of one replica at a time", async (t) => {
    const report = await runCrashCampaign({ kills: 4, collectionEvery: 4, seededBlobs: 1000, replicas: 3, log: (line) => t.diagnostic(line) });
    t.diagnostic(`crash campaign on replicas: ${JSON.stringify(report)}`);
    assert.equal(report.kills, 4);
    assert.ok(report.servedAndVerified > 0);
  });
});
