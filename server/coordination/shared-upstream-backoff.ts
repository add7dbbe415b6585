import type { BackoffSchedule, UpstreamBackoff } from "../upstream/backoff.js";
import { KUBELET_BACKOFF } from "../upstream/backoff.js";
import type { Fallbacks } from "./fallbacks.js";
import type { RedisChannel } from "./redis-channel.js";
import type { RedisConnection } from "./redis-connection.js";

/**
 * How long after a backoff ends the replicas that did not record it wait before trying
 * themselves: the replica that did tries first, and the others hear its outcome meanwhile.
 */
const TRY_FIRST_MS = 2000;

interface Entry {
  delayMs: number;
  until: number;
  /** The replica that recorded the failure: the one that tries again when the wait ends. */
  by: string;
}

/**
 * Records a failure unless one is recorded and not over yet (a replica that tried meanwhile
 * does not double the wait). KEYS[1]: the key; ARGV: now, initial, max, Retry-After (-1: none),
 * replica, how long the record outlives its wait. Returns the record: delay, until, by.
 */
const FAIL = `
local e = redis.call('HMGET', KEYS[1], 'delay', 'until', 'by')
local now = tonumber(ARGV[1])
local delay = tonumber(e[1])
local untilAt = tonumber(e[2])
if untilAt and untilAt > now then return {delay, untilAt, e[3]} end
if delay then delay = math.min(delay * 2, tonumber(ARGV[3])) else delay = tonumber(ARGV[2]) end
local wait = tonumber(ARGV[4])
if wait < 0 then wait = delay end
untilAt = now + wait
redis.call('HSET', KEYS[1], 'delay', delay, 'until', untilAt, 'by', ARGV[5])
redis.call('PEXPIRE', KEYS[1], wait + tonumber(ARGV[6]))
return {delay, untilAt, ARGV[5]}
`;

/**
 * The upstream backoff of replicas: the kubelet schedule once for the cluster. A failure is
 * recorded in Redis (a hash per key, with a TTL) and announced on a channel, so every replica
 * backs off from the first failure any of them saw; when the wait ends the replica that
 * recorded it tries first, alone, and the others only after TRY_FIRST_MS unless they hear of
 * its outcome (a new failure, or a success that clears the key). So a failing upstream is
 * contacted once per step of the schedule, whatever the number of replicas. Answers stay
 * synchronous: each replica keeps the records in memory. While the channel is not subscribed
 * (Redis down) each replica backs off on its own, as a single berth does.
 */
export class SharedUpstreamBackoff implements UpstreamBackoff {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly redis: RedisConnection,
    private readonly channel: RedisChannel,
    private readonly replicaId: string,
    private readonly fallbacks: Fallbacks,
    private readonly schedule: BackoffSchedule = KUBELET_BACKOFF,
    private readonly now: () => number = Date.now,
  ) {
    channel.onMessage((message) => this.heard(message));
  }

  remaining(key: string): number {
    const entry = this.entries.get(key);
    if (!entry) return 0;
    const mine = entry.by === this.replicaId || !this.channel.subscribed;
    return Math.max(0, entry.until + (mine ? 0 : TRY_FIRST_MS) - this.now());
  }

  failure(key: string, retryAfterMs?: number): number {
    const now = this.now();
    const previous = this.entries.get(key);
    if (previous && previous.until > now && this.channel.subscribed) return previous.until - now;
    const delayMs = previous ? Math.min(previous.delayMs * 2, this.schedule.maxMs) : this.schedule.initialMs;
    const wait = retryAfterMs ?? delayMs;
    this.entries.set(key, { delayMs, until: now + wait, by: this.replicaId });
    void this.share(key, now, retryAfterMs);
    return wait;
  }

  success(key: string): void {
    if (!this.entries.delete(key)) return;
    void this.clear(key);
  }

  snapshot(): { key: string; remainingMs: number; delayMs: number }[] {
    return [...this.entries.keys()].map((key) => ({ key, remainingMs: this.remaining(key), delayMs: this.entries.get(key)!.delayMs }));
  }

  /** Records the failure in Redis, adopts the record Redis holds, and tells the others. */
  private async share(key: string, now: number, retryAfterMs: number | undefined): Promise<void> {
    try {
      const [delayMs, until, by] = (await this.redis.client.eval(FAIL, 1, redisKey(key), now, this.schedule.initialMs, this.schedule.maxMs, retryAfterMs ?? -1, this.replicaId, this.schedule.maxMs)) as [number, number, string];
      const entry = { delayMs: Number(delayMs), until: Number(until), by };
      this.entries.set(key, entry);
      await this.channel.publish(JSON.stringify({ key, ...entry }));
    } catch {
      this.fallbacks.count("upstream-backoff");
    }
  }

  private async clear(key: string): Promise<void> {
    try {
      await this.redis.client.del(redisKey(key));
      await this.channel.publish(JSON.stringify({ key }));
    } catch {
      this.fallbacks.count("upstream-backoff");
    }
  }

  private heard(message: string): void {
    let record: { key?: unknown; delayMs?: unknown; until?: unknown; by?: unknown };
    try {
      record = JSON.parse(message) as typeof record;
    } catch {
      return;
    }
    if (typeof record.key !== "string") return;
    if (typeof record.delayMs === "number" && typeof record.until === "number" && typeof record.by === "string") {
      this.entries.set(record.key, { delayMs: record.delayMs, until: record.until, by: record.by });
    } else {
      this.entries.delete(record.key);
    }
  }
}

function redisKey(key: string): string {
  return `backoff:${key}`;
}
