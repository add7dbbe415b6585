import { LocalTagListCache, TAG_LIST_TTL_MS, type TagListCache } from "./tag-list-cache.js";
import type { Fallbacks } from "../coordination/fallbacks.js";
import type { RedisConnection } from "../coordination/redis-connection.js";

/**
 * The upstream tag lists of replicas: one replica's answer serves all of them for
 * TAG_LIST_TTL_MS (a Redis key with that TTL), so N replicas list an upstream repository once
 * per period, not N times. Each replica holds what it fetched or read in memory until the
 * answer's own expiry; while Redis is down it caches on its own.
 */
export class SharedTagListCache implements TagListCache {
  private readonly held = new LocalTagListCache();

  constructor(
    private readonly redis: RedisConnection,
    private readonly fallbacks: Fallbacks,
    private readonly now: () => number = Date.now,
  ) {}

  async get(key: string): Promise<string[] | undefined> {
    const held = await this.held.get(key);
    if (held) return held;
    try {
      const stored = await this.redis.client.get(redisKey(key));
      if (stored === null) return undefined;
      const { until, tags } = JSON.parse(stored) as { until: number; tags: string[] };
      const left = until - this.now();
      if (left <= 0) return undefined;
      await this.held.set(key, tags, left);
      return tags;
    } catch {
      this.fallbacks.count("tag-lists");
      return undefined;
    }
  }

  async set(key: string, tags: string[]): Promise<void> {
    await this.held.set(key, tags);
    try {
      await this.redis.client.set(redisKey(key), JSON.stringify({ until: this.now() + TAG_LIST_TTL_MS, tags }), "PX", TAG_LIST_TTL_MS);
    } catch {
      this.fallbacks.count("tag-lists");
    }
  }

  close(): void {
    this.held.close();
  }
}

function redisKey(key: string): string {
  return `tag-list:${key}`;
}
