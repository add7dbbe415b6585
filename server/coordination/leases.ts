import { randomBytes } from "node:crypto";
import type { RedisConnection } from "./redis-connection.js";

/** Renews a lease only while it still holds this holder's value. */
const RENEW = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`;
/** Releases a lease only while it still holds this holder's value. */
const RELEASE = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;
/** Takes a lease over only while it holds the stale holder's fence, or nothing. */
const TAKE_OVER = `local current = redis.call("GET", KEYS[1])
if current and cjson.decode(current).fence ~= tonumber(ARGV[2]) then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
return 1`;
/** How long the fencing counter outlives its last use. */
const FENCE_TTL_MS = 30 * 24 * 3600 * 1000;

/** Who holds a lease: a replica, the fence of its acquisition, and what it advertised (its internal URL, say). */
export interface LeaseHolder {
  replica: string;
  /** Grows with every acquisition of any lease: a later holder always has a larger one. */
  fence: number;
  data: string;
}

/**
 * Named leases shared by the replicas (`SET NX PX`, no redlock: one Redis is the authority):
 * one holder at a time, until it releases the lease or stops renewing it. A holder's writes
 * that must not outlive its lease are checked against its value (Lease.value) atomically.
 */
export class Leases {
  constructor(
    private readonly redis: RedisConnection,
    private readonly replicaId: string,
  ) {}

  /** The lease, if no one holds it; undefined when someone does. Throws when Redis is down. */
  async acquire(name: string, ttlMs: number, data = ""): Promise<Lease | undefined> {
    const { holder, value } = await this.next(data);
    const taken = await this.redis.client.set(leaseKey(name), value, "PX", ttlMs, "NX");
    return taken === "OK" ? new Lease(this.redis, name, value, holder) : undefined;
  }

  /**
   * The lease, taken from `stale` (a holder known to be gone: it stopped answering, but its
   * lease has not expired yet) if `stale` still holds it or no one does; undefined when another
   * holder has it by now. Throws when Redis is down.
   */
  async takeOver(name: string, ttlMs: number, stale: LeaseHolder, data = ""): Promise<Lease | undefined> {
    const { holder, value } = await this.next(data);
    const taken = await this.redis.client.eval(TAKE_OVER, 1, leaseKey(name), value, stale.fence, ttlMs);
    return taken === 1 ? new Lease(this.redis, name, value, holder) : undefined;
  }

  /** A new holder's value, with the next fence. */
  private async next(data: string): Promise<{ holder: LeaseHolder; value: string }> {
    const [[, fence]] = (await this.redis.client.multi().incr("fence").pexpire("fence", FENCE_TTL_MS).exec()) as [[Error | null, number], unknown];
    const holder: LeaseHolder = { replica: this.replicaId, fence, data };
    return { holder, value: JSON.stringify({ ...holder, token: randomBytes(8).toString("hex") }) };
  }

  /** Who holds the lease now, if anyone. */
  async holder(name: string): Promise<LeaseHolder | undefined> {
    const value = await this.redis.client.get(leaseKey(name));
    if (value === null) return undefined;
    const { replica, fence, data } = JSON.parse(value) as LeaseHolder;
    return { replica, fence, data };
  }
}

/** One acquisition of a lease. */
export class Lease {
  private renewing?: NodeJS.Timeout;

  constructor(
    private readonly redis: RedisConnection,
    readonly name: string,
    /** The lease's value while this holder has it: Lua scripts compare it to act only as the holder. */
    readonly value: string,
    readonly holder: LeaseHolder,
  ) {}

  get key(): string {
    return leaseKey(this.name);
  }

  /** Extends the lease; false when it was lost (expired, or taken over). */
  async renew(ttlMs: number): Promise<boolean> {
    return (await this.redis.client.eval(RENEW, 1, this.key, this.value, ttlMs)) === 1;
  }

  /** Renews every third of `ttlMs` until released; `lost` is called once if a renewal fails. */
  keepAlive(ttlMs: number, lost: () => void): void {
    this.renewing = setInterval(() => {
      this.renew(ttlMs).then(
        (held) => {
          if (!held) this.stop(lost);
        },
        () => this.stop(lost),
      );
    }, ttlMs / 3).unref();
  }

  async release(): Promise<void> {
    this.stop();
    await this.redis.client.eval(RELEASE, 1, this.key, this.value).catch(() => undefined);
  }

  private stop(lost?: () => void): void {
    if (this.renewing === undefined) return;
    clearInterval(this.renewing);
    this.renewing = undefined;
    lost?.();
  }
}

function leaseKey(name: string): string {
  return `lease:${name}`;
}
