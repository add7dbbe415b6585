import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import type { CoordinationConfig } from "../../config/coordination-schema.js";
import { ConfigError } from "../../config/load.js";
import type { Logger } from "../log.js";
import { Fallbacks } from "./fallbacks.js";
import { Leases } from "./leases.js";
import { RedisChannel } from "./redis-channel.js";
import { RedisConnection } from "./redis-connection.js";

/** Shortest shared secret the internal port takes. */
const MIN_SECRET_LENGTH = 16;

/**
 * What a replica coordinates with the others through: its name, the Redis they share (and the
 * leases in it), and its internal port's settings. Built once, in the composition root; every
 * shared implementation takes what it needs from here, and falls back to what one process can
 * do while `redis.up` is false.
 */
export interface Coordination {
  readonly replicaId: string;
  readonly redis: RedisConnection;
  readonly leases: Leases;
  readonly internal: {
    /** HOST:PORT to listen on. */
    listen: string;
    /** How the others reach it, when configured or given in the environment; else derived from where it listens. */
    url?: string;
    /** The secret every replica presents on the internal port. */
    secret: string;
  };
  /** What ran on this replica alone because Redis could not be asked, by shared feature. */
  readonly fallbacks: Fallbacks;
  /**
   * Whether this replica coordinates now: Redis answers and every channel is subscribed. When
   * false it serves on its own (local coalescing, backoff, index that asks S3), and recovers by itself.
   */
  readonly up: boolean;
  /** When `up` last changed (or the coordination opened). */
  readonly since: Date;
  /** A pub/sub channel of the replicas (one subscription per name, closed with the coordination). */
  channel(name: string): RedisChannel;
  close(): Promise<void>;
}

export async function openCoordination(config: CoordinationConfig, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<Coordination> {
  const secret = (await readFile(config.internal.secretFile, "utf8").catch((err: Error) => {
    throw new ConfigError(`coordination.internal.secretFile: cannot read ${config.internal.secretFile}: ${err.message}`);
  })).trim();
  if (secret.length < MIN_SECRET_LENGTH) throw new ConfigError(`coordination.internal.secretFile: the secret must be at least ${MIN_SECRET_LENGTH} characters`);
  const replicaId = config.replicaId ?? env.BERTH_REPLICA_ID ?? hostname();
  const redis = await RedisConnection.open({ url: config.redis.url, keyPrefix: config.redis.keyPrefix, commandTimeoutMs: config.redis.commandTimeout }, log.child({ component: "coordination", replica: replicaId }));
  const url = config.internal.url ?? env.BERTH_INTERNAL_URL;
  const channels = new Map<string, RedisChannel>();
  const channelLog = log.child({ component: "coordination", replica: replicaId });
  const state = { up: false, since: new Date() };
  /** `quietly`: a channel just opened is not subscribed yet, which is no news for the log. */
  const update = (quietly = false) => {
    const up = redis.up && [...channels.values()].every((channel) => channel.subscribed);
    if (up === state.up) return;
    Object.assign(state, { up, since: new Date() });
    if (quietly) return;
    channelLog[up ? "info" : "warn"]({}, up ? "coordinating with the other replicas" : "coordination fell back to this replica alone: serving on its own until Redis answers");
  };
  redis.onChange(() => update());
  return {
    replicaId,
    redis,
    leases: new Leases(redis, replicaId),
    internal: { listen: config.internal.listen, ...(url ? { url } : {}), secret },
    fallbacks: new Fallbacks(),
    get up() {
      return state.up;
    },
    get since() {
      return state.since;
    },
    channel: (name) => {
      let channel = channels.get(name);
      if (!channel) {
        channels.set(name, (channel = new RedisChannel(redis, name, channelLog)));
        channel.onChange(() => update());
        update(true);
      }
      return channel;
    },
    close: async () => {
      await Promise.all([...channels.values()].map((channel) => channel.close()));
      await redis.close();
    },
  };
}
