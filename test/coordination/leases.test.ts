import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Leases } from "../../server/coordination/leases.js";
import { RedisConnection } from "../../server/coordination/redis-connection.js";
import { RedisServer } from "../support/redis-server.js";

describe("leases through a real Redis", () => {
  let redis: RedisServer;
  let a: RedisConnection;
  let b: RedisConnection;

  before(async () => {
    redis = await RedisServer.start();
    a = await redis.connect();
    b = await redis.connect();
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await redis?.close();
  });

  it("gives a lease to one replica at a time, with what it advertised, and to the next once released", async () => {
    const first = await new Leases(a, "replica-a").acquire("fill:x", 5000, "http://a:5001");
    assert.ok(first);
    assert.equal(await new Leases(b, "replica-b").acquire("fill:x", 5000), undefined);
    assert.deepEqual(await new Leases(b, "replica-b").holder("fill:x"), { replica: "replica-a", fence: first.holder.fence, data: "http://a:5001" });
    await first.release();
    const second = await new Leases(b, "replica-b").acquire("fill:x", 5000);
    assert.ok(second);
    assert.ok(second.holder.fence > first.holder.fence, "a later holder has a larger fence");
    await second.release();
  });

  it("lets a replica take a lease over from a holder known to be gone, but not from a holder that took it since", async () => {
    const gone = await new Leases(a, "replica-a").acquire("fill:y", 5000, "http://a:5001");
    assert.ok(gone);
    const taker = new Leases(b, "replica-b");
    const taken = await taker.takeOver("fill:y", 5000, gone.holder, "http://b:5001");
    assert.ok(taken, "the gone holder's lease is taken before it expires");
    assert.ok(taken.holder.fence > gone.holder.fence);
    assert.deepEqual(await taker.holder("fill:y"), { replica: "replica-b", fence: taken.holder.fence, data: "http://b:5001" });
    assert.equal(await new Leases(a, "replica-c").takeOver("fill:y", 5000, gone.holder, "http://c:5001"), undefined, "a second taker finds the new holder");
    assert.equal(await gone.renew(5000), false, "the gone holder cannot renew it");
    await taken.release();
    const free = await new Leases(a, "replica-c").takeOver("fill:y", 5000, gone.holder, "http://c:5001");
    assert.ok(free, "a released lease is taken as a free one");
    await free.release();
  });

  it("lets a lease its holder stops renewing expire, and refuses the old holder's renewal and release afterwards", async () => {
    const stale = await new Leases(a, "replica-a").acquire("gc", 200);
    assert.ok(stale);
    await delay(300);
    const fresh = await new Leases(b, "replica-b").acquire("gc", 5000);
    assert.ok(fresh, "the expired lease is free");
    assert.equal(await stale.renew(5000), false);
    await stale.release();
    assert.equal((await new Leases(a, "replica-a").holder("gc"))?.replica, "replica-b", "a stale release leaves the new holder's lease alone");
    await fresh.release();
  });

  it("keeps a lease alive while its holder runs, and tells it when it was lost", async () => {
    const lease = await new Leases(a, "replica-a").acquire("kept", 300);
    assert.ok(lease);
    let lost = false;
    lease.keepAlive(300, () => (lost = true));
    await delay(700);
    assert.equal(await new Leases(b, "replica-b").acquire("kept", 300), undefined, "renewed past its first TTL");
    await a.client.del("lease:kept");
    await new Leases(b, "replica-b").acquire("kept", 5000);
    await delay(250);
    assert.equal(lost, true);
    await lease.release();
  });

  it("fails fast while Redis is down, says so, and works again once it is back", async () => {
    const states: boolean[] = [];
    a.onChange((up) => states.push(up));
    await redis.stop();
    for (let i = 0; i < 50 && a.up; i++) await delay(20);
    assert.equal(a.up, false);
    const started = Date.now();
    await assert.rejects(new Leases(a, "replica-a").acquire("down", 1000));
    assert.ok(Date.now() - started < 1000, "refused at once, not after a queue drained");
    await redis.restart();
    for (let i = 0; i < 200 && !a.up; i++) await delay(20);
    assert.equal(a.up, true);
    assert.ok(await new Leases(a, "replica-a").acquire("down", 1000));
    assert.deepEqual(states, [false, true]);
  });
});
