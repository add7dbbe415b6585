import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import type { Coordination } from "../coordination/coordination.js";
import type { Lease, LeaseHolder } from "../coordination/leases.js";
import type { Logger } from "../log.js";
import type { ClusterFillMetrics } from "../metrics/registry-metrics.js";
import type { Digest } from "../reference/digest.js";
import type { BlobStore } from "../storage/blob-store.js";
import type { ByteRange, ObjectStream, StorageDriver } from "../storage/driver.js";
import { BlobFills, type BlobFill, type Fill, type Fills, type FillState, type JoinHooks } from "./blob-fill.js";
import { FillPeers, PeerGoneError } from "./fill-peers.js";
import { LeftBehindError, PeerRelay } from "./peer-relay.js";

/** How long a fill lease lasts unless its holder renews it (every third of this while the fill runs). */
const LEASE_MS = 10_000;
/**
 * How long a replica keeps answering for a fill it led once the fill ended: a follower that asks
 * just then finishes from it (stored) or learns why it failed, instead of fetching again.
 */
const LINGER_MS = 10_000;
/** Pause before a reader tries again to find who serves a fill, when its last try gave it no byte. */
const RETRY_MS = 200;
/** Tries without a byte after which a reader gives up: longer than a lease outlives its holder. */
const MAX_RETRIES = 100;
/** How long a followed fill no reader reads stays joinable here. */
const IDLE_MS = 2_000;

/** Where a replica reads a fill's bytes: its own fetch, another replica's, or the store once the fill is done. */
type Source = { kind: "local"; fill: BlobFill } | { kind: "peer"; holder: LeaseHolder } | { kind: "store" };

/** One reader of a followed fill: what closing it must stop. */
interface Reader {
  aborter: AbortController;
  /** The transfer it reads now. */
  transfer?: Readable;
}

/** What every fill of this replica shares. */
interface Replica {
  readonly blobs: BlobStore;
  /** The fetches this replica runs itself. */
  readonly local: BlobFills;
  readonly coordination: Coordination;
  readonly peers: FillPeers;
  /** This replica's internal URL, as the leases it holds advertise it. */
  readonly url: string;
  readonly metrics: ClusterFillMetrics;
  readonly log: Logger;
  /** Aborted when berth shuts down. */
  readonly signal: AbortSignal;
  /** Serves `fill` to the other replicas under `lease`, renewing the lease until the fill has ended. */
  serve(digest: Digest, source: string, fill: BlobFill, lease: Lease): void;
}

/**
 * Blob fills shared by the replicas of a cluster: one upstream fetch per blob (and upstream
 * repository) for all of them. A fill lease in Redis, per (source, digest) as BlobFills keys its
 * fills, names the replica that fetches; it runs today's BlobFill and serves it to the others on
 * its internal port, where followers stream it as it arrives, Range included, the last byte only
 * once the digest verified. A follower whose owner stops serving (it died, restarted, or cannot be
 * reached) finishes from the store if the blob is stored by then, else takes the lease over and
 * fetches itself, resuming each client's stream at the byte it had reached: clients stall, they do
 * not fail. While Redis is down each replica fetches on its own, as BlobFills does.
 */
export class ClusterFills implements Fills {
  /** This replica's part in each fill its clients wait for. */
  private readonly joined = new Map<string, ClusterFill>();
  /** Fills this replica leads (or just led) for the cluster: what its internal port serves. */
  private readonly led = new Map<string, BlobFill>();
  /** Leases of fills that ended, held a little longer (LINGER_MS): their release, by timer. */
  private readonly lingering = new Map<NodeJS.Timeout, () => void>();
  private readonly local: BlobFills;
  private readonly aborter = new AbortController();
  private readonly replica: Replica;

  constructor(
    driver: StorageDriver,
    blobs: BlobStore,
    coordination: Coordination,
    /** Where the other replicas reach this one's internal port. */
    url: string,
    metrics: ClusterFillMetrics,
    private readonly log: Logger,
  ) {
    this.local = new BlobFills(driver, blobs);
    this.replica = {
      blobs,
      local: this.local,
      coordination,
      peers: new FillPeers(coordination.internal.secret, log),
      url,
      metrics,
      log,
      signal: this.aborter.signal,
      serve: (digest, source, fill, lease) => this.serve(digest, source, fill, lease),
    };
  }

  get(digest: Digest, source: string): Fill | undefined {
    return this.joined.get(fillKey(digest, source));
  }

  join(digest: Digest, source: string, hooks: JoinHooks): { fill: Fill; started: boolean } {
    const key = fillKey(digest, source);
    const existing = this.joined.get(key);
    if (existing && existing.state !== "failed") {
      existing.joinedBy(hooks);
      return { fill: existing, started: false };
    }
    const fill = new ClusterFill(this.replica, digest, source, hooks);
    this.joined.set(key, fill);
    void fill.finished.then(() => {
      if (this.joined.get(key) === fill) this.joined.delete(key);
    });
    return { fill: new FirstJoiner(fill, hooks.admit), started: true };
  }

  /** The fill of `digest` from `source` this replica leads or just led, for the other replicas. */
  served(digest: Digest, source: string): BlobFill | undefined {
    return this.led.get(fillKey(digest, source));
  }

  abortAll(): void {
    this.aborter.abort(new Error("berth is shutting down"));
    this.local.abortAll();
    void this.replica.peers.close().catch(() => {});
  }

  async settled(): Promise<void> {
    await this.local.settled();
    for (const [timer, release] of this.lingering) {
      clearTimeout(timer);
      release();
    }
    this.lingering.clear();
  }

  list(): { digest: string; written: number; size?: number; readers: number }[] {
    return this.local.list();
  }

  private serve(digest: Digest, source: string, fill: BlobFill, lease: Lease): void {
    const key = fillKey(digest, source);
    this.led.set(key, fill);
    lease.keepAlive(LEASE_MS, () => this.log.warn({ digest: digest.toString(), source }, "lost the lease of a blob fill this replica leads: another replica may fetch the blob too"));
    void fill.finished.then(() => {
      // A failed fill's lease goes at once, so that a client retrying gets a fresh fetch.
      if (fill.state === "failed") void lease.release();
      const release = () => {
        if (this.led.get(key) === fill) this.led.delete(key);
        void lease.release();
      };
      const timer = setTimeout(() => {
        this.lingering.delete(timer);
        release();
      }, LINGER_MS).unref();
      this.lingering.set(timer, release);
    });
  }
}

/**
 * This replica's part in the cluster's fill of one blob from one source: the fetch it leads, or
 * the one another replica leads, which its readers stream from that replica's internal port.
 */
class ClusterFill implements Fill {
  /** Resolves once this replica knows where to read the fill first. */
  readonly decided: Promise<Source>;
  readonly sized: Promise<void>;
  readonly finished: Promise<void>;
  private source?: Source;
  private knownSize?: number;
  /** What the replica followed said of its fill last. */
  private peerState: FillState = "fetching";
  private failure?: Error;
  private readers = 0;
  private recovering?: Promise<Source>;
  /** The transfer from the replica followed that this replica's readers of the whole blob share. */
  private relay?: { holder: LeaseHolder; relay: PeerRelay };
  private sizeKnown = false;
  private end!: () => void;

  constructor(
    private readonly replica: Replica,
    readonly digest: Digest,
    private readonly from: string,
    /** A requester's hooks, who may have the source's bytes: a takeover fetches with them. */
    private hooks: JoinHooks,
  ) {
    this.finished = new Promise((resolve) => (this.end = resolve));
    void this.finished.then(() => this.relay?.relay.abort());
    this.decided = this.decide().then((source) => (this.source = source));
    this.sized = this.decided
      .then(() => this.learnSize())
      .then(
        () => {
          this.sizeKnown = true;
          setTimeout(() => this.endIfIdle(), IDLE_MS).unref();
        },
        (err: unknown) => this.fail(err),
      );
  }

  get state(): FillState {
    if (this.failure) return "failed";
    const source = this.source;
    if (source?.kind === "local") return source.fill.state;
    return source?.kind === "store" ? "stored" : this.peerState;
  }

  get error(): Error | undefined {
    return this.failure ?? (this.source?.kind === "local" ? this.source.fill.error : undefined);
  }

  get size(): number | undefined {
    return this.knownSize ?? (this.source?.kind === "local" ? this.source.fill.size : undefined);
  }

  /** Another requester joined; it was admitted to the source first, so its hooks serve a takeover too. */
  joinedBy(hooks: JoinHooks): void {
    this.hooks = hooks;
  }

  async open(range?: ByteRange): Promise<ObjectStream> {
    await this.decided;
    const source = this.source!;
    if (source.kind === "local") return source.fill.open(range);
    return this.follow(source, range);
  }

  private get leaseName(): string {
    return `fill:${this.from}@${this.digest}`;
  }

  /** Leads the fill if no replica does, follows the one that does, or fetches alone while Redis is down. */
  private async decide(): Promise<Source> {
    const { coordination, url, metrics } = this.replica;
    if (coordination.redis.up) {
      try {
        for (let attempt = 0; attempt < 3; attempt++) {
          const lease = await coordination.leases.acquire(this.leaseName, LEASE_MS, url);
          if (lease) {
            metrics.fill("led");
            return this.lead(lease);
          }
          const holder = await coordination.leases.holder(this.leaseName);
          if (holder && holder.data !== url) {
            metrics.fill("followed");
            return { kind: "peer", holder };
          }
          // A lease of this replica's own, for a fill it no longer runs: taken afresh.
          const retaken = holder && (await coordination.leases.takeOver(this.leaseName, LEASE_MS, holder, url));
          if (retaken) {
            metrics.fill("led");
            return this.lead(retaken);
          }
        }
      } catch {
        // Redis failed the command: this replica fetches on its own.
      }
    }
    metrics.fill("unshared");
    return this.alone();
  }

  private lead(lease: Lease): Source {
    const { fill } = this.replica.local.join(this.digest, this.from, this.hooks);
    this.replica.serve(this.digest, this.from, fill, lease);
    void fill.finished.then(() => this.end());
    return { kind: "local", fill };
  }

  private alone(): Source {
    const { fill } = this.replica.local.join(this.digest, this.from, this.hooks);
    void fill.finished.then(() => this.end());
    return { kind: "local", fill };
  }

  private async learnSize(): Promise<void> {
    for (;;) {
      const source = this.source!;
      if (source.kind === "local") return source.fill.sized;
      if (source.kind === "store") {
        this.knownSize = await this.replica.blobs.size(this.digest);
        if (this.knownSize !== undefined) return;
      } else {
        try {
          const { size, state } = await this.replica.peers.state(source.holder.data, this.digest, this.from, this.replica.signal);
          this.knownSize = size;
          this.peerState = state;
          return;
        } catch (err) {
          if (!(err instanceof PeerGoneError)) throw err;
        }
      }
      await this.recover(source);
    }
  }

  /** A reader of a fill this replica does not fetch itself: from the replica that does, switching source when that one stops serving. */
  private follow(first: Source, range?: ByteRange): ObjectStream {
    this.readers++;
    const reading = this.replica.blobs.usage.opened(this.digest);
    const reader: Reader = { aborter: new AbortController() };
    const chunks = this.chunks(first, range?.start ?? 0, range ? range.end : this.size! - 1, reader);
    const stream: Readable = new Readable({
      read: () => {
        chunks.next().then(
          (next) => stream.push(next.done ? null : next.value),
          (err: Error) => stream.destroy(err),
        );
      },
      destroy: (err, callback) => {
        // Stops the transfer it waits on, so that the generator returns now, not at its next chunk.
        reader.aborter.abort();
        reader.transfer?.destroy();
        void chunks.return(undefined).catch(() => {});
        reading();
        this.readers--;
        this.endIfIdle();
        callback(err);
      },
    });
    return stream;
  }

  /** Bytes [start, end] of the blob, from `source` and whichever sources follow it, each byte once. */
  private async *chunks(source: Source, start: number, end: number, reader: Reader): AsyncGenerator<Buffer> {
    const signal = AbortSignal.any([reader.aborter.signal, this.replica.signal]);
    let position = start;
    let opened = false;
    let retries = 0;
    for (;;) {
      const resumedAt = position;
      try {
        // An empty blob is asked for whole: its fill says when it verified.
        reader.transfer = await this.openSource(source, position <= end ? { start: position, end } : undefined, signal);
        opened = true;
        for await (const chunk of reader.transfer as AsyncIterable<Buffer>) {
          position += chunk.length;
          yield chunk;
        }
        if (position > end) {
          if (end === this.size! - 1 && this.peerState === "fetching") this.peerState = "verified";
          return;
        }
        throw new PeerGoneError(`the transfer of ${this.digest} ended at byte ${position}, before byte ${end}`);
      } catch (err) {
        // The shared transfer has moved past this reader: it reads one of its own from where it is.
        if (err instanceof LeftBehindError) continue;
        // A fetch of this replica's own failing, or the store failing, is the fill's failure.
        if (source.kind !== "peer" || signal.aborted) throw err;
        if (opened && position > end) return;
        retries = position > resumedAt ? 0 : retries + 1;
        if (retries > MAX_RETRIES) throw err;
        if (retries > 1) await delay(RETRY_MS);
        source = await this.recover(source);
      }
    }
  }

  private async openSource(source: Source, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> {
    if (source.kind === "local") return source.fill.open(range);
    if (source.kind === "peer") return (range && this.relayFrom(source.holder, range.start)?.open(range.start, range.end)) ?? this.replica.peers.read(source.holder.data, this.digest, this.from, range, signal);
    const stored = await this.replica.blobs.open(this.digest, range);
    if (!stored) throw new Error(`blob ${this.digest} vanished from the store`);
    return stored.stream;
  }

  /**
   * The transfer of the whole blob from `holder` this replica's readers share: started by the
   * first reader from byte 0, once per holder (a reader that arrives later, or resumes after the
   * shared transfer broke, reads a transfer of its own).
   */
  private relayFrom(holder: LeaseHolder, start: number): PeerRelay | undefined {
    if (this.relay?.holder === holder) return this.relay.relay.over ? undefined : this.relay.relay;
    if (start !== 0) return undefined;
    const relay = new PeerRelay((signal) => this.replica.peers.read(holder.data, this.digest, this.from, { start: 0, end: this.size! - 1 }, signal), this.size!, this.replica.signal);
    this.relay = { holder, relay };
    return relay;
  }

  /** Where to read once `failed` stopped serving; every reader that saw it fail shares one answer. */
  private recover(failed: Source): Promise<Source> {
    if (this.source !== failed) return Promise.resolve(this.source!);
    this.recovering ??= this.findSource(failed).then(
      (source) => {
        this.recovering = undefined;
        this.source = source;
        return source;
      },
      (err: unknown) => {
        this.recovering = undefined;
        this.fail(err);
        throw err;
      },
    );
    return this.recovering;
  }

  /**
   * Asks the replica that stopped serving first (a broken connection may be all that happened;
   * a fill that failed at the upstream fails here too), then: the store, if the blob is stored
   * and linked for the source by now; else the lease: taken when free or still held by the
   * replica that stopped serving (this replica then fetches), or followed to its new holder.
   */
  private async findSource(failed: Source): Promise<Source> {
    const { coordination, peers, url, metrics, log, signal } = this.replica;
    // Asked twice: a holder that has just won the lease may not serve the fill for a moment yet.
    for (let asked = 0; failed.kind === "peer" && asked < 2; asked++) {
      if (asked > 0) await delay(RETRY_MS, undefined, { signal });
      try {
        this.peerState = (await peers.state(failed.holder.data, this.digest, this.from, signal)).state;
        return failed;
      } catch (err) {
        if (!(err instanceof PeerGoneError)) throw err;
      }
    }
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      if (signal.aborted) throw signal.reason;
      if (attempt > 0) await delay(RETRY_MS);
      if (await this.hooks.stored().catch(() => false)) {
        this.knownSize ??= await this.replica.blobs.size(this.digest);
        return { kind: "store" };
      }
      let holder: LeaseHolder | undefined;
      let lease: Lease | undefined;
      try {
        holder = await coordination.leases.holder(this.leaseName);
        const stale = holder && (holder.data === url || (failed.kind === "peer" && holder.fence === failed.holder.fence));
        if (!holder) lease = await coordination.leases.acquire(this.leaseName, LEASE_MS, url);
        else if (stale) lease = await coordination.leases.takeOver(this.leaseName, LEASE_MS, holder, url);
        else return { kind: "peer", holder };
      } catch {
        metrics.fill("unshared");
        return this.alone();
      }
      if (lease) {
        metrics.takeover();
        log.info({ digest: this.digest.toString(), source: this.from, from: failed.kind === "peer" ? failed.holder.replica : "the store" }, "took over a blob fill another replica stopped serving");
        return this.lead(lease);
      }
    }
    throw new Error(`no replica serves the fill of ${this.digest} from ${this.from}`);
  }

  private fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new Error(String(err));
    this.end();
  }

  /** A fill followed from another replica that nobody here reads is left: a later client joins afresh. */
  private endIfIdle(): void {
    if (this.source?.kind !== "local" && this.sizeKnown && this.readers === 0) this.end();
  }
}

/**
 * The view of the requester whose request made this replica join a fill: it started no fetch
 * with its own credentials if another replica leads the fill, so it is admitted to the source
 * first, as any requester joining a fill in flight is.
 */
class FirstJoiner implements Fill {
  readonly sized: Promise<void>;
  readonly finished: Promise<void>;
  private refusal?: Error;

  constructor(
    private readonly fill: ClusterFill,
    admit: () => Promise<void>,
  ) {
    const admitted = fill.decided.then(
      (source) => (source.kind === "peer" ? admit() : undefined),
    ).catch((err: unknown) => {
      this.refusal = err instanceof Error ? err : new Error(String(err));
    });
    this.sized = admitted.then(() => (this.refusal ? undefined : fill.sized));
    this.finished = admitted.then(() => (this.refusal ? undefined : fill.finished));
  }

  get state(): FillState {
    return this.refusal ? "failed" : this.fill.state;
  }

  get error(): Error | undefined {
    return this.refusal ?? this.fill.error;
  }

  get size(): number | undefined {
    return this.refusal ? undefined : this.fill.size;
  }

  async open(range?: ByteRange): Promise<ObjectStream> {
    if (this.refusal) throw this.refusal;
    return this.fill.open(range);
  }
}

function fillKey(digest: Digest, source: string): string {
  return `${source} ${digest}`;
}
