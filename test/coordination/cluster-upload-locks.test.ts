import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { ClusterUploadLocks } from "../../server/coordination/cluster-upload-locks.js";
import { Leases } from "../../server/coordination/leases.js";
import { RedisConnection } from "../../server/coordination/redis-connection.js";
import { createLogger } from "../../server/log.js";
import { StorageUnavailableError } from "../../server/storage/storage-unavailable-error.js";
import { RedisServer } from "../support/redis-server.js";

const log = createLogger("silent");

describe("upload session locks shared through a real Redis", () => {
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

  it("runs two replicas' tasks on one session one after the other, and tasks on other sessions meanwhile", async () => {
    const replicaA = new ClusterUploadLocks(new Leases(a, "replica-a"), log);
    const replicaB = new ClusterUploadLocks(new Leases(b, "replica-b"), log);
    const events: string[] = [];
    const task = (name: string) => async () => {
      events.push(`${name} start`);
      await delay(300);
      events.push(`${name} end`);
    };
    const first = replicaA.run("session-1", task("a"));
    await delay(50);
    await Promise.all([first, replicaB.run("session-1", task("b")), replicaB.run("session-2", async () => void events.push("other"))]);
    assert.deepEqual(events, ["a start", "other", "a end", "b start", "b end"]);
  });

  it("refuses a record write by a holder that stalled past the lease and was taken over: StorageUnavailableError", async () => {
    const replicaA = new ClusterUploadLocks(new Leases(a, "replica-a"), log, 300);
    const replicaB = new ClusterUploadLocks(new Leases(b, "replica-b"), log, 300);
    let tookOver = false;
    await assert.rejects(
      replicaA.run("session-3", async (held) => {
        await held.confirm();
        const until = Date.now() + 500;
        while (Date.now() < until); // a stall (GC, a blocked event loop): no renewal
        await replicaB.run("session-3", async (heldByB) => {
          await heldByB.confirm();
          tookOver = true;
        });
        await held.confirm();
      }),
      StorageUnavailableError,
    );
    assert.ok(tookOver);
  });
});
