import { BlobStore } from "../blob-store.js";
import type { IndexedObject, LocalObjectIndex, ObjectIndex } from "./object-index.js";

/**
 * A channel every process sharing the bucket publishes to and hears the others on (the
 * coordination's RedisChannel). `subscribed` is true only while nothing published since it
 * last turned true can have been missed.
 */
export interface ReplicaChannel {
  readonly subscribed: boolean;
  publish(message: string): Promise<void>;
  /** Resolves once every message published before the call reached this process's listeners. */
  caughtUp(): Promise<void>;
  onMessage(listener: (message: string) => void): void;
  onChange(listener: (subscribed: boolean) => void): void;
}

/** One change as published: [path, size, modified ms] for a write, [path] for a delete. */
type Change = [path: string, size: number, modified: number] | [path: string];

/**
 * The ObjectIndex of one of several processes writing one bucket: its memory is a
 * LocalObjectIndex, and every write and delete it records is published to the others, which
 * record it as theirs (a write with its size but not its bytes: the next read fetches them).
 * So warm reads still cost no request. While the channel is not subscribed (Redis down, a
 * reconnect, a silent subscription) another process's change may go unheard: the index then
 * serves neither "absent" nor held bytes but those of content-addressed objects (reads ask the
 * store, which is the truth), and when
 * the channel turns, either way, it forgets both, with every answer to a request sent before;
 * once subscribed again, the keys written unheard are added by a walk of the bucket (onGapClosed).
 */
export class SharedObjectIndex implements ObjectIndex {
  private readonly gapListeners = new Set<() => void>();

  constructor(
    private readonly memory: LocalObjectIndex,
    private readonly channel: ReplicaChannel,
    /** Called when the others could not be told of a change. */
    private readonly onUntold: (err: unknown) => void = () => {},
  ) {
    channel.onMessage((message) => this.heard(message));
    channel.onChange((subscribed) => {
      memory.forgetUnconfirmed();
      if (subscribed) for (const listener of this.gapListeners) listener();
    });
  }

  onGapClosed(listener: () => void): void {
    this.gapListeners.add(listener);
  }

  /**
   * A change's publish returns before the others heard it: a client told "deleted" by one
   * process may ask another at once, which must have heard the delete before it answers.
   */
  caughtUp(): Promise<void> {
    return this.channel.caughtUp();
  }

  lookup(path: string): IndexedObject | "absent" | undefined {
    const known = this.memory.lookup(path);
    return known === "absent" && !this.channel.subscribed ? undefined : known;
  }

  content(path: string): Buffer | undefined {
    // A blob's bytes never change under its digest, and only collection deletes blobs, which
    // pauses while Redis is down: held ones are served even then.
    return this.channel.subscribed || BlobStore.digestAt(path) !== undefined ? this.memory.content(path) : undefined;
  }

  present(path: string, info: IndexedObject, content?: Buffer): Promise<void> {
    void this.memory.present(path, info, content);
    return this.tell([path, info.size, info.modified.getTime()]);
  }

  absent(path: string): Promise<void> {
    void this.memory.absent(path);
    return this.tell([path]);
  }

  mark(): number {
    return this.memory.mark();
  }

  answered(path: string, found: IndexedObject | undefined, since: number, content?: Buffer): boolean {
    return this.memory.answered(path, found, since, content);
  }

  listed(path: string, info: IndexedObject, since: number): boolean {
    return this.memory.listed(path, info, since);
  }

  children(prefix: string): string[] {
    return this.memory.children(prefix);
  }

  under(prefix: string): string[] {
    return this.memory.under(prefix);
  }

  private async tell(change: Change): Promise<void> {
    try {
      await this.channel.publish(JSON.stringify(change));
    } catch (err) {
      this.onUntold(err);
    }
  }

  private heard(message: string): void {
    let change: unknown;
    try {
      change = JSON.parse(message);
    } catch {
      return;
    }
    if (!Array.isArray(change) || typeof change[0] !== "string") return;
    const [path, size, modified] = change as Change;
    this.memory.changedElsewhere(path, typeof size === "number" && typeof modified === "number" ? { size, modified: new Date(modified) } : undefined);
  }
}
