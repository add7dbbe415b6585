import "../support/on-s3.js";
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runCrashCampaign } from "./crash-campaign.js";

// Swift answers in tens of milliseconds where a disk answers in microseconds: fewer kills than on disk keep npm test short.
describe("crash safety with berth on S3 (Swift's s3api; the bounded run, test/stress runs 200 kills)", () => {
  it("keeps the bucket consistent, acknowledged content intact, uploads resumable and no multipart upload outliving collection across 6 SIGKILLs mid-fetch, mid-upload, mid-push and mid-collection", async (t) => {
    const report = await runCrashCampaign({ kills: 6, collectionEvery: 3, seededBlobs: 1000, log: (line) => t.diagnostic(line) });
    t.diagnostic(`crash campaign: ${JSON.stringify(report)}`);
    assert.equal(report.kills, 6);
    assert.ok(report.acknowledgedBlobs > 0 && report.acknowledgedManifests > 0, "the workloads pushed content before the kills");
    assert.ok(report.inFlightAtKill.blobGet + report.inFlightAtKill.uploadPatch + report.inFlightAtKill.manifestPut > 0, "some kills landed mid-transfer");
  });
});
