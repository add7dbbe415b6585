import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { openTestStorage, type TestStorage } from "../support/storage-drivers.js";

describe("one process's collection guard", () => {
  let store: TestStorage;

  before(async () => {
    store = await openTestStorage("filesystem");
  });
  after(() => store?.close());

  it("spares a digest pinned during a run, which its scan may have missed a link to, and condemns the rest", async () => {
    const { blobs } = store.storage;
    const [linkedMeanwhile, untouched, storedAgain] = await Promise.all([randomBytes(64), randomBytes(64), randomBytes(64)].map((bytes) => blobs.ingestBuffer(bytes)));
    const turn = await blobs.guard.turn();
    assert.equal(typeof turn, "object");
    if (typeof turn !== "object") return;
    // What a fill or a mount does before it links a stored blob, and what a store of it does.
    await blobs.size(linkedMeanwhile);
    await blobs.guard.placed(storedAgain);
    await turn.doom([linkedMeanwhile, untouched, storedAgain]);
    assert.equal(await turn.condemn(linkedMeanwhile), false);
    assert.equal(await turn.condemn(storedAgain), false);
    assert.equal(await turn.condemn(untouched), true);
    await turn.end();

    const next = await blobs.guard.turn();
    if (typeof next !== "object") return assert.fail("one process always collects");
    assert.equal(await next.condemn(linkedMeanwhile), true, "a pin counts for the run it happened in only");
    await next.end();
  });

  it("pins nothing between runs", async () => {
    const digest = Digest.of("sha256", randomBytes(64));
    assert.equal(await store.storage.blobs.guard.pin(digest), true);
    const turn = await store.storage.blobs.guard.turn();
    if (typeof turn !== "object") return assert.fail("one process always collects");
    assert.equal(await turn.condemn(digest), true);
    await turn.end();
  });
});
