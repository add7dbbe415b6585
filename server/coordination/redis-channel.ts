import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "../log.js";
import type { RedisConnection } from "./redis-connection.js";

/** How often a replica sends itself a heartbeat through the channel. */
const HEARTBEAT_MS = 1000;
/** A subscription that heard none of its own heartbeats for this long is treated as broken. */
const SILENCE_MS = 5000;
/** Starts the body of a replica's message to itself that marks how far its subscription has caught up. */
const CATCH_UP = "\u0000catch-up ";

/**
 * A Redis pub/sub channel the replicas share: what one replica publishes reaches every other
 * replica subscribed at that moment, in the order Redis took it. Pub/sub delivers at most
 * once: a subscription that breaks (Redis down, a reconnect, a subscriber Redis cuts off for
 * falling behind, a connection that silently stopped carrying anything) may have lost
 * messages. So `subscribed` is true only while nothing can have been lost since it last turned
 * true, and every listener hears each change; its own heartbeat, sent every second, must come
 * back, or the subscription is treated as broken and made again.
 */
export class RedisChannel {
  private readonly channel: string;
  private readonly subscriber: Redis;
  /** Tells this process's messages (heartbeats included) from the others', whatever replica ids say. */
  private readonly instance = randomBytes(8).toString("hex");
  private listening = false;
  /** Bumped whenever the subscriber's connection closes: a subscription made before is gone. */
  private connection = 0;
  /** When the oldest of this process's heartbeats not heard back yet was sent. */
  private unheardSince?: number;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly messageListeners = new Set<(message: string) => void>();
  /** Callers of caughtUp() waiting for their marker to come back, by marker. */
  private readonly catchingUp = new Map<number, () => void>();
  private markers = 0;
  private readonly stateListeners = new Set<(subscribed: boolean) => void>();

  constructor(
    private readonly redis: RedisConnection,
    /** The channel's name, under the key prefix. */
    name: string,
    private readonly log: Logger,
  ) {
    this.channel = `${redis.client.options.keyPrefix ?? ""}${name}`;
    this.subscriber = redis.client.duplicate({ autoResubscribe: false, lazyConnect: true });
    this.subscriber.on("ready", () => void this.subscribe());
    this.subscriber.on("close", () => {
      this.connection++;
      this.set(false);
    });
    // RedisConnection logs the state of Redis itself; the subscriber's errors say the same.
    this.subscriber.on("error", () => {});
    this.subscriber.on("message", (channel: string, message: string) => {
      if (channel === this.channel) this.received(message);
    });
    this.subscriber.connect().catch(() => {});
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS).unref();
  }

  /** Whether every message published since this turned true has reached this replica. */
  get subscribed(): boolean {
    return this.listening;
  }

  /** Sends a message to the other replicas; rejects when Redis could not take it. */
  async publish(message: string): Promise<void> {
    await this.redis.client.publish(this.channel, `${this.instance} ${message}`);
  }

  /**
   * Resolves once every message Redis took before this call has reached this replica's
   * listeners: a marker published now comes back after them, as Redis delivers a channel's
   * messages in order. Resolves at once while not subscribed (nothing heard then is trusted),
   * and when the subscription breaks or Redis does not take the marker.
   */
  caughtUp(): Promise<void> {
    if (!this.listening) return Promise.resolve();
    const marker = ++this.markers;
    return new Promise((resolve) => {
      this.catchingUp.set(marker, resolve);
      this.publish(`${CATCH_UP}${marker}`).catch(() => this.caughtUpTo(marker));
    });
  }

  /** Called with every message another replica publishes. */
  onMessage(listener: (message: string) => void): void {
    this.messageListeners.add(listener);
  }

  /** Called with the new state whenever `subscribed` changes. */
  onChange(listener: (subscribed: boolean) => void): void {
    this.stateListeners.add(listener);
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    this.caughtUpTo(Infinity);
    this.messageListeners.clear();
    this.stateListeners.clear();
    this.subscriber.disconnect(false);
  }

  private async subscribe(): Promise<void> {
    const connection = this.connection;
    try {
      await this.subscriber.subscribe(this.channel);
    } catch {
      return; // the connection closed meanwhile: its "ready" will come again
    }
    if (connection !== this.connection) return;
    this.unheardSince = undefined;
    this.set(true);
  }

  private received(message: string): void {
    const space = message.indexOf(" ");
    const body = message.slice(space + 1);
    if (message.slice(0, space) === this.instance) {
      this.unheardSince = undefined;
      if (body.startsWith(CATCH_UP)) this.caughtUpTo(Number(body.slice(CATCH_UP.length)));
      return;
    }
    if (body === "" || body.startsWith(CATCH_UP)) return; // another replica's heartbeat or marker
    for (const listener of this.messageListeners) listener(body);
  }

  private beat(): void {
    const now = Date.now();
    if (this.listening && this.unheardSince !== undefined && now - this.unheardSince > SILENCE_MS) {
      this.log.warn({ channel: this.channel }, "redis channel silent: subscribing again, as messages may have been lost");
      this.unheardSince = undefined;
      // Reconnecting closes the connection, which ends the subscription and bumps `connection`.
      this.subscriber.disconnect(true);
      return;
    }
    if (!this.listening) return;
    this.unheardSince ??= now;
    // A heartbeat Redis did not take cannot come back: it is not waited for.
    this.publish("").catch(() => {
      if (this.unheardSince === now) this.unheardSince = undefined;
    });
  }

  /** Releases the callers of caughtUp() whose marker is `marker` or an earlier one. */
  private caughtUpTo(marker: number): void {
    for (const [waiting, resolve] of this.catchingUp) {
      if (waiting > marker) continue;
      this.catchingUp.delete(waiting);
      resolve();
    }
  }

  private set(listening: boolean): void {
    if (listening === this.listening) return;
    this.listening = listening;
    // A marker sent on a subscription now broken may never come back.
    if (!listening) this.caughtUpTo(Infinity);
    for (const listener of this.stateListeners) listener(listening);
  }
}
