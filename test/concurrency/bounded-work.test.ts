import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BoundedWork, WorkRefused } from "../../server/concurrency/bounded-work.js";

/** A task the test ends by hand, counting how many run at once. */
function instrumented() {
  let running = 0;
  let peak = 0;
  const releases: (() => void)[] = [];
  return {
    task: async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise<void>((resolve) => releases.push(resolve));
      running--;
      return "done";
    },
    get running() {
      return running;
    },
    get peak() {
      return peak;
    },
    /** Ends the oldest running task, then lets the next one start. */
    async releaseOne() {
      releases.shift()!();
      for (let i = 0; i < 5; i++) await Promise.resolve();
    },
  };
}

describe("BoundedWork", () => {
  it("never runs more than its concurrency, lets its queue wait, and refuses the rest at once", async () => {
    const work = new BoundedWork(2, 3);
    const probe = instrumented();
    const outcomes = Array.from({ length: 20 }, () => work.run(probe.task).then(() => "ran", (err: unknown) => (err instanceof WorkRefused ? "refused" : "failed")));
    const refusedAtOnce = await Promise.race([Promise.all(outcomes.slice(5)), new Promise((resolve) => setImmediate(() => resolve("still waiting")))]);
    assert.deepEqual(refusedAtOnce, Array(15).fill("refused"), "the 15 beyond 2 running + 3 queued are refused before anything finishes");
    assert.equal(probe.running, 2);
    assert.equal(work.queued, 3);
    while (work.running > 0) {
      assert.ok(probe.running <= 2);
      await probe.releaseOne();
    }
    assert.deepEqual(await Promise.all(outcomes.slice(0, 5)), Array(5).fill("ran"));
    assert.equal(probe.peak, 2);
    assert.equal(work.queued, 0);
  });

  it("takes new work again once a running task ends, and frees the slot of a task that throws", async () => {
    const work = new BoundedWork(1, 0);
    await assert.rejects(work.run(async () => Promise.reject(new Error("boom"))), /boom/);
    const probe = instrumented();
    const first = work.run(probe.task);
    await assert.rejects(work.run(probe.task), WorkRefused);
    await probe.releaseOne();
    assert.equal(await first, "done");
    const second = work.run(probe.task);
    await probe.releaseOne();
    assert.equal(await second, "done");
    assert.equal(work.running, 0);
  });
});
