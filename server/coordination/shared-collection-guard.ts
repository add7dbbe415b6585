import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "../log.js";
import type { Digest } from "../reference/digest.js";
import { CollectionTurnLostError, type CollectionGuard, type CollectionSkip, type CollectionTurn } from "../storage/collection-guard.js";
import type { Coordination } from "./coordination.js";
import type { Lease } from "./leases.js";

/** `coordination.collection`, in milliseconds. */
export interface SharedCollectionOptions {
  /** How long a pin lasts unless renewed (a read in progress renews it). */
  pinTTL: number;
  /** How far behind writes a bucket listing may be: digests pinned that lately are spared. */
  listingLag: number;
}

const LEASE = "collector";
const LEASE_TTL_MS = 30_000;
/** How long a condemned digest stays refused to pinners unless the leader, still deleting it, extends it. */
const CONDEMNED_TTL_MS = 60_000;
/** How long a removed digest reads as absent on every replica, whatever its own index still holds (until stored again). */
const REMOVED_TTL_MS = 24 * 3600_000;
/** How long the doomed set, the journal and the epoch outlive their last write. */
const STATE_TTL_MS = 24 * 3600_000;

const key = {
  pin: (digest: string) => `collection:pin:${digest}`,
  condemned: (digest: string) => `collection:condemned:${digest}`,
  removed: (digest: string) => `collection:removed:${digest}`,
  doomed: "collection:doomed",
  journal: "collection:journal",
  epoch: "collection:epoch",
};

const NOW = `local t = redis.call("TIME") local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Pins a digest (KEYS: condemned, removed, pin, doomed, journal; ARGV: digest, pin TTL, state TTL):
 * refused (0) while it is condemned; else pinned, spared from the doomed set, journaled with
 * Redis's clock, and reported removed (2) or kept (1).
 */
const PIN = `if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
${NOW}
redis.call("SET", KEYS[3], "1", "PX", ARGV[2])
redis.call("SREM", KEYS[4], ARGV[1])
redis.call("ZADD", KEYS[5], now, ARGV[1])
redis.call("PEXPIRE", KEYS[5], ARGV[3])
if redis.call("EXISTS", KEYS[2]) == 1 then return 2 end
return 1`;

/** Extends a condemned digest's refusal (KEYS: condemned; ARGV: lease value, TTL) while the leader that condemned it deletes it. */
const EXTEND = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`;

/** A blob stored anew (KEYS: removed, pin, doomed, journal; ARGV: digest, pin TTL, state TTL): no longer removed, and pinned. */
const PLACED = `${NOW}
redis.call("DEL", KEYS[1])
redis.call("SET", KEYS[2], "1", "PX", ARGV[2])
redis.call("SREM", KEYS[3], ARGV[1])
redis.call("ZADD", KEYS[4], now, ARGV[1])
redis.call("PEXPIRE", KEYS[4], ARGV[3])
return 1`;

/**
 * Starts a run as the lease holder (KEYS: lease, epoch, journal, doomed; ARGV: lease value,
 * window, state TTL). -1: the lease is lost. -2: Redis's collection state is younger than the
 * window (Redis restarted: pins and journal entries may be missing). Else Redis's time now,
 * with the journal trimmed to the window and the doomed set empty.
 */
const START = `if redis.call("GET", KEYS[1]) ~= ARGV[1] then return -1 end
${NOW}
local epoch = tonumber(redis.call("GET", KEYS[2]))
if not epoch then epoch = now redis.call("SET", KEYS[2], now) end
redis.call("PEXPIRE", KEYS[2], ARGV[3])
if now - epoch < tonumber(ARGV[2]) then return -2 end
redis.call("ZREMRANGEBYSCORE", KEYS[3], "-inf", "(" .. (now - tonumber(ARGV[2])))
redis.call("DEL", KEYS[4])
return now`;

/**
 * Condemns a doomed digest (KEYS: lease, pin, doomed, journal, condemned; ARGV: lease value,
 * digest, journal cutoff, condemned TTL). -1: the lease is lost. 0: spared (pinned, no longer
 * doomed, or journaled since the cutoff). 1: condemned; pinners are refused until it is removed.
 */
const CONDEMN = `if redis.call("GET", KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call("EXISTS", KEYS[2]) == 1 then return 0 end
if redis.call("SISMEMBER", KEYS[3], ARGV[2]) == 0 then return 0 end
local linked = redis.call("ZSCORE", KEYS[4], ARGV[2])
if linked and tonumber(linked) >= tonumber(ARGV[3]) then return 0 end
redis.call("SREM", KEYS[3], ARGV[2])
redis.call("SET", KEYS[5], ARGV[1], "PX", ARGV[4])
return 1`;

/**
 * Collection across replicas sharing one bucket, through Redis. One replica at a time holds
 * the collector lease and collects; readers and writers on every replica pin digests (a pin
 * also journals the digest with Redis's clock, so a link made while the leader scanned, or
 * that a lagging listing hid from it, is seen). The leader dooms its candidates, then
 * condemns each atomically just before deleting it, and only while it still holds the lease
 * (its fence): a digest pinned or journaled meanwhile is spared. A removed digest reads as
 * absent everywhere until stored again. While Redis is down, pins are skipped (serving goes
 * on) and nothing is collected; after Redis lost its state, collection waits until every
 * live pin has been renewed and the journal covers a whole window again.
 */
export class SharedCollectionGuard implements CollectionGuard {
  private lease?: Lease;
  /** Digests pinned lately from here, and when: pinned again only when a third of the TTL has passed. */
  private readonly pinnedAt = new Map<string, number>();
  /** Digests held open here, and by how many reads. */
  private readonly held = new Map<string, number>();
  private readonly renewing: NodeJS.Timeout;

  constructor(
    private readonly coordination: Pick<Coordination, "redis" | "leases">,
    private readonly options: SharedCollectionOptions,
    private readonly log: Logger,
  ) {
    this.renewing = setInterval(() => void this.renew(), options.pinTTL / 3).unref();
  }

  private get redis() {
    return this.coordination.redis;
  }

  private get window(): number {
    return this.options.listingLag + this.options.pinTTL;
  }

  async pin(digest: Digest): Promise<boolean> {
    const name = digest.toString();
    const at = this.pinnedAt.get(name);
    if (at !== undefined && Date.now() - at < this.options.pinTTL / 3) return true;
    if (!this.redis.up) return true;
    // A condemned digest is waited for until its deletion is over (or its leader gone): a blob
    // stored again meanwhile would be deleted under the link about to be made to it.
    for (;;) {
      const answer = await this.pinInRedis(name);
      if (answer === undefined) return true; // Redis failed: nothing collects without it
      if (answer === 1) {
        this.pinnedAt.set(name, Date.now());
        return true;
      }
      if (answer === 2) return false;
      await delay(100);
    }
  }

  async hold(digest: Digest): Promise<{ kept: boolean; release: () => void }> {
    if (!(await this.pin(digest))) return { kept: false, release: () => {} };
    const name = digest.toString();
    this.held.set(name, (this.held.get(name) ?? 0) + 1);
    let released = false;
    return {
      kept: true,
      release: () => {
        if (released) return;
        released = true;
        const left = (this.held.get(name) ?? 1) - 1;
        if (left <= 0) this.held.delete(name);
        else this.held.set(name, left);
      },
    };
  }

  async placed(digest: Digest): Promise<void> {
    const name = digest.toString();
    if (!this.redis.up) return;
    await this.redis.client
      .eval(PLACED, 4, key.removed(name), key.pin(name), key.doomed, key.journal, name, this.options.pinTTL, STATE_TTL_MS)
      .then(() => this.pinnedAt.set(name, Date.now()))
      .catch((err: Error) => this.log.debug({ err: err.message, digest: name }, "could not record a stored blob in redis"));
  }

  async turn(): Promise<CollectionTurn | CollectionSkip> {
    if (!this.redis.up) return "coordination-down";
    try {
      // A lease this replica still thinks it holds may be gone (Redis restarted): then it competes again at once.
      for (let attempt = 0; attempt < 2; attempt++) {
        const lease = this.lease ?? (await this.lead());
        if (!lease) return "not-leader";
        const started = Number(await this.redis.client.eval(START, 4, lease.key, key.epoch, key.journal, key.doomed, lease.value, this.window, STATE_TTL_MS));
        if (started === -1) {
          this.dropLease(lease);
          continue;
        }
        if (started === -2) return "coordination-recovering";
        return this.turnOf(lease, started - this.window);
      }
      return "not-leader";
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not start a collection turn in redis");
      return "coordination-down";
    }
  }

  async close(): Promise<void> {
    clearInterval(this.renewing);
    await this.lease?.release();
    this.lease = undefined;
  }

  private async lead(): Promise<Lease | undefined> {
    const lease = await this.coordination.leases.acquire(LEASE, LEASE_TTL_MS);
    if (!lease) return undefined;
    this.log.info({ fence: lease.holder.fence }, "this replica leads content collection");
    lease.keepAlive(LEASE_TTL_MS, () => {
      if (this.lease !== lease) return;
      this.lease = undefined;
      this.log.warn({}, "lost the content collection lease");
    });
    this.lease = lease;
    return lease;
  }

  private dropLease(lease: Lease): void {
    if (this.lease === lease) this.lease = undefined;
    void lease.release();
  }

  private turnOf(lease: Lease, journalCutoff: number): CollectionTurn {
    const client = this.redis.client;
    const deleting = new Map<string, NodeJS.Timeout>();
    const deleted = (name: string) => {
      clearInterval(deleting.get(name));
      deleting.delete(name);
    };
    // A Redis that stops answering mid-run ends the turn: nothing is deleted without its checks.
    const inRedis = async <T>(work: () => Promise<T>): Promise<T> => {
      try {
        return await work();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "redis failed during content collection: stopping this run");
        throw new CollectionTurnLostError("coordination-down");
      }
    };
    return {
      doom: (digests) =>
        inRedis(async () => {
          for (let i = 0; i < digests.length; i += 1000) {
            await client
              .multi()
              .sadd(key.doomed, ...digests.slice(i, i + 1000).map(String))
              .pexpire(key.doomed, STATE_TTL_MS)
              .exec();
          }
        }),
      condemn: async (digest) => {
        const name = digest.toString();
        const answer = await inRedis(async () => Number(await client.eval(CONDEMN, 5, lease.key, key.pin(name), key.doomed, key.journal, key.condemned(name), lease.value, name, journalCutoff, CONDEMNED_TTL_MS)));
        if (answer === -1) {
          this.dropLease(lease);
          throw new CollectionTurnLostError("not-leader");
        }
        if (answer === 1) {
          const extend = () => void client.eval(EXTEND, 1, key.condemned(name), lease.value, CONDEMNED_TTL_MS).catch(() => {});
          deleting.set(name, setInterval(extend, CONDEMNED_TTL_MS / 3).unref());
        }
        return answer === 1;
      },
      removed: (digest) =>
        inRedis(async () => {
          const name = digest.toString();
          deleted(name);
          await client.multi().set(key.removed(name), "1", "PX", REMOVED_TTL_MS).del(key.condemned(name)).exec();
        }),
      end: async () => {
        for (const name of [...deleting.keys()]) deleted(name);
        await client.del(key.doomed);
      },
    };
  }

  /** 1 kept, 2 removed, 0 condemned; undefined when Redis did not answer. */
  private async pinInRedis(name: string): Promise<number | undefined> {
    try {
      return Number(await this.redis.client.eval(PIN, 5, key.condemned(name), key.removed(name), key.pin(name), key.doomed, key.journal, name, this.options.pinTTL, STATE_TTL_MS));
    } catch (err) {
      this.log.debug({ err: (err as Error).message, digest: name }, "could not pin a digest in redis");
      return undefined;
    }
  }

  /** Renews the pins of reads in progress, and forgets pins too old to count. */
  private async renew(): Promise<void> {
    const now = Date.now();
    for (const [name, at] of this.pinnedAt) if (now - at >= this.options.pinTTL / 3) this.pinnedAt.delete(name);
    if (!this.redis.up) return;
    await Promise.all([...this.held.keys()].map(async (name) => (await this.pinInRedis(name)) === 1 && this.pinnedAt.set(name, Date.now())));
  }
}
