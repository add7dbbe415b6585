import { Redis } from "ioredis";
import type { Logger } from "../log.js";

export interface RedisOptions {
  url: string;
  /** Prepended to every key, so several berth clusters can share one Redis. */
  keyPrefix: string;
  /** Longest wait for one command's answer. */
  commandTimeoutMs: number;
}

/**
 * berth's connection to Redis. Commands fail at once while Redis is unreachable (nothing is
 * queued for later), and `up` says whether it answers now: coordination is a degradation
 * when it is gone, never an outage, so every caller has a single-process answer to fall back to.
 */
export class RedisConnection {
  readonly client: Redis;
  private connected = false;
  private readonly listeners = new Set<(up: boolean) => void>();

  private constructor(
    options: RedisOptions,
    private readonly log: Logger,
  ) {
    this.client = new Redis(options.url, {
      keyPrefix: options.keyPrefix,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: options.commandTimeoutMs,
      // Reconnects for ever, at most every 2 s: berth recovers by itself when Redis is back.
      retryStrategy: (attempt) => Math.min(100 * attempt, 2000),
    });
    this.client.on("ready", () => this.set(true));
    this.client.on("close", () => this.set(false));
    this.client.on("error", (err: Error) => this.log.debug({ err: err.message }, "redis connection error"));
  }

  /** Connects; a Redis that is down at start is not an error (berth starts degraded). */
  static async open(options: RedisOptions, log: Logger): Promise<RedisConnection> {
    const connection = new RedisConnection(options, log);
    await connection.client.connect().catch((err: Error) => log.warn({ err: err.message }, "redis unavailable at start: coordinating nothing until it answers"));
    return connection;
  }

  /** Whether Redis answers now. */
  get up(): boolean {
    return this.connected;
  }

  /** Called with the new state whenever Redis comes up or goes down. */
  onChange(listener: (up: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.client.disconnect(false);
  }

  private set(up: boolean): void {
    if (up === this.connected) return;
    this.connected = up;
    this.log[up ? "info" : "warn"]({}, up ? "redis is up: coordinating with the other replicas" : "redis is down: serving on this replica's own, coordinating nothing");
    for (const listener of this.listeners) listener(up);
  }
}
