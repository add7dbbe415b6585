import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Leases } from "../../server/coordination/leases.js";
import { RedisConnection } from "../../server/coordination/redis-connection.js";
import { SharedCollectionGuard } from "../../server/coordination/shared-collection-guard.js";
import { createLogger } from "../../server/log.js";
import { Digest } from "../../server/reference/digest.js";
import { CollectionTurnLostError, type CollectionTurn } from "../../server/storage/collection-guard.js";
import { RedisServer } from "../support/redis-server.js";

const log = createLogger("silent");
const OPTIONS = { pinTTL: 600, listingLag: 300 };
const WINDOW = OPTIONS.pinTTL + OPTIONS.listingLag;

const digest = () => Digest.of("sha256", randomBytes(16));

describe("the shared collection guard, through a real Redis", () => {
  let redis: RedisServer;
  const opened: { connection: RedisConnection; guard: SharedCollectionGuard }[] = [];

  /** A replica's guard, on a connection of its own. */
  const replica = async (id: string): Promise<SharedCollectionGuard> => {
    const connection = await redis.connect();
    const coordination = { replicaId: id, redis: connection, leases: new Leases(connection, id), internal: { listen: "127.0.0.1:0", secret: "x".repeat(16) }, close: () => connection.close() };
    const guard = new SharedCollectionGuard(coordination, OPTIONS, log);
    opened.push({ connection, guard });
    return guard;
  };
  /** The leader's next turn, once Redis's collection state covers a whole window. */
  const turnOf = async (guard: SharedCollectionGuard): Promise<CollectionTurn> => {
    for (;;) {
      const turn = await guard.turn();
      if (typeof turn !== "string") return turn;
      assert.equal(turn, "coordination-recovering");
      await delay(100);
    }
  };

  let leader: SharedCollectionGuard;
  let other: SharedCollectionGuard;

  before(async () => {
    redis = await RedisServer.start();
    leader = await replica("a");
    other = await replica("b");
    await turnOf(leader).then((turn) => turn.end());
  });
  after(async () => {
    for (const { guard, connection } of opened) {
      await guard.close();
      await connection.close();
    }
    await redis?.close();
  });

  it("gives turns to the lease holder only", async () => {
    assert.equal(await other.turn(), "not-leader");
    assert.equal(typeof (await leader.turn()), "object");
  });

  it("condemns a doomed digest nobody pinned, and then reads it as removed everywhere until it is stored again", async () => {
    const blob = digest();
    await delay(WINDOW); // nothing of this test's set-up is in the journal window any more
    const turn = await turnOf(leader);
    await turn.doom([blob]);
    assert.equal(await turn.condemn(blob), true);
    await turn.removed(blob);
    await turn.end();
    assert.equal(await other.pin(blob), false, "a removed blob reads as absent");
    await other.placed(blob);
    assert.equal(await other.pin(blob), true, "stored again, it is kept");
  });

  it("spares a digest pinned after it was doomed, and one pinned while the scan ran", async () => {
    const pinnedAfterDoom = digest();
    const pinnedDuringScan = digest();
    const turn = await turnOf(leader);
    await other.pin(pinnedDuringScan);
    await delay(OPTIONS.pinTTL + 50); // the pin itself has expired: only the journal remembers it
    await turn.doom([pinnedAfterDoom, pinnedDuringScan]);
    await other.pin(pinnedAfterDoom);
    await delay(OPTIONS.pinTTL + 50);
    assert.equal(await turn.condemn(pinnedAfterDoom), false);
    assert.equal(await turn.condemn(pinnedDuringScan), false);
    await turn.end();
  });

  it("spares a digest being read for as long as the read lasts", async () => {
    const blob = digest();
    const read = await other.hold(blob);
    assert.equal(read.kept, true);
    await delay(WINDOW + 100);
    const turn = await turnOf(leader);
    await turn.doom([blob]);
    await delay(OPTIONS.pinTTL * 2); // renewed meanwhile
    assert.equal(await turn.condemn(blob), false);
    read.release();
    await turn.end();
  });

  it("makes a pinner wait while a condemned digest is deleted, then read it as absent", async () => {
    const blob = digest();
    await delay(WINDOW);
    const turn = await turnOf(leader);
    await turn.doom([blob]);
    assert.equal(await turn.condemn(blob), true);
    const pinning = other.pin(blob);
    const early = await Promise.race([pinning.then(() => "answered"), delay(300).then(() => "waiting")]);
    assert.equal(early, "waiting");
    await turn.removed(blob);
    assert.equal(await pinning, false);
    await turn.end();
  });

  it("ends the turn of a leader whose lease another replica took", async () => {
    const turn = await turnOf(leader);
    const blob = digest();
    await turn.doom([blob]);
    await redis.restart(); // the lease (and every pin) is gone: another replica leads from now on
    await delay(500);
    const next = await turnOf(other);
    await assert.rejects(turn.condemn(blob), (err: unknown) => err instanceof CollectionTurnLostError && err.reason === "not-leader");
    assert.equal(await leader.turn(), "not-leader");
    await next.end();
  });

  it("collects nothing while Redis is down, and waits a whole window after it comes back empty", async () => {
    await redis.stop();
    await delay(300);
    assert.equal(await leader.turn(), "coordination-down");
    assert.equal(await other.turn(), "coordination-down");
    assert.equal(await other.pin(digest()), true, "reads and pushes go on unpinned");
    await redis.restart();
    let first = await other.turn();
    while (first === "coordination-down") {
      await delay(100);
      first = await other.turn();
    }
    const back = Date.now();
    assert.equal(first, "coordination-recovering");
    const turn = await turnOf(other);
    assert.ok(Date.now() - back >= WINDOW - 100, `a turn came ${Date.now() - back} ms after Redis came back`);
    await turn.end();
  });
});
