import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { registerCoordinationMetrics, type CoordinationStatus } from "./coordination-metrics.js";
import { RepositoryRequests } from "./repository-requests.js";
import type { ClusterFillMetrics, CollectionTotals, ContentKind, RegistryMetrics, RequestMetrics, RouteKind, TokenMetrics } from "./registry-metrics.js";
import { UpstreamCounters } from "./upstream-counters.js";

/** A blob fill in flight, as `BlobFills.list()` describes it. */
export interface TransferSummary {
  digest: string;
  written: number;
  size?: number;
}

/** What the metrics read from the running berth when asked, rather than being told. */
export interface MetricSources {
  fills: { list(): TransferSummary[] };
  /** `UpstreamBackoff.snapshot()`: keys are `upstream-host/repository`. */
  backoff: { snapshot(): { key: string; remainingMs: number; delayMs: number }[] };
  upstreams: readonly { host: string; url: string }[];
  /** With replicas: how this one coordinates with the others. */
  coordination?: () => CoordinationStatus;
}

export type UpstreamHealth = "ok" | "idle" | "failing" | "backing off";

export interface UpstreamStatus {
  host: string;
  url: string;
  health: UpstreamHealth;
  /** Repositories of this upstream berth is not contacting now, with the wait left. */
  backingOff: { repository: string; remainingMs: number }[];
  requests: number;
  lastStatus?: number;
  lastAnswerAt?: Date;
  hits: number;
  misses: number;
  receivedBytes: number;
}

/** Everything the status page shows, at one moment. */
export interface StatusSnapshot {
  takenAt: Date;
  upstreams: UpstreamStatus[];
  hits: number;
  misses: number;
  topRepositories: { repository: string; requests: number }[];
  transfers: TransferSummary[];
  lastCollection?: { at: Date; report: CollectionTotals };
  coordination?: CoordinationStatus;
}

const KINDS: readonly ContentKind[] = ["manifest", "blob"];

let processMetrics: Registry | undefined;

/** The process's own metrics (CPU, memory, event loop, GC), collected once however many berths a process runs. */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

/**
 * berth's metrics: a prom-client registry of its own for /metrics (served with the process
 * metrics), and the same counts for the status page.
 */
export class BerthMetrics implements RegistryMetrics, TokenMetrics, RequestMetrics, ClusterFillMetrics {
  readonly registry = new Registry();
  private readonly meters = new Map<string, UpstreamCounters>();
  private readonly repositories = new RepositoryRequests();
  private lastCollection?: { at: Date; report: CollectionTotals };

  private readonly httpRequests = new Counter({
    name: "berth_http_requests_total",
    help: "Requests answered, by route kind and status.",
    labelNames: ["route", "status"] as const,
    registers: [this.registry],
  });
  private readonly httpDuration = new Histogram({
    name: "berth_http_request_duration_seconds",
    help: "Time from a request's arrival to the end of its response, by route kind.",
    labelNames: ["route"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  private readonly httpBytes = new Counter({
    name: "berth_http_response_bytes_total",
    help: "Response body bytes sent, by route kind.",
    labelNames: ["route"] as const,
    registers: [this.registry],
  });
  private readonly upstreamLatency = new Histogram({
    name: "berth_upstream_request_duration_seconds",
    help: "Time from sending a request to an upstream to its response headers, by upstream.",
    labelNames: ["upstream"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly tokensIssued = new Counter({ name: "berth_tokens_issued_total", help: "Tokens issued by /token.", registers: [this.registry] });
  private readonly tokenRefusals = new Counter({
    name: "berth_token_refusals_total",
    help: "Token requests refused, by token error code.",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });
  private readonly collections = new Counter({ name: "berth_collections_total", help: "Content collections (GC and eviction) finished.", registers: [this.registry] });
  private readonly collectionsSkipped = new Counter({
    name: "berth_collections_skipped_total",
    help: "Content collections this replica did not run, by reason: not-leader (another replica leads collection), coordination-down or coordination-recovering (Redis is down, or lately restarted: collection pauses).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  private readonly collectionPaused = new Gauge({
    name: "berth_collection_paused",
    help: "1 while collection pauses because coordination through Redis is down or recovering (as of the last attempt), else 0.",
    registers: [this.registry],
  });
  private readonly evictions = new Counter({ name: "berth_cache_evictions_total", help: "Mirrored blobs evicted to keep the cache under cache.maxSize.", registers: [this.registry] });
  private readonly collectedBlobs = new Counter({ name: "berth_gc_deleted_blobs_total", help: "Blobs nothing referenced, deleted by garbage collection.", registers: [this.registry] });
  private readonly freedBytes = new Counter({ name: "berth_gc_freed_bytes_total", help: "Bytes freed by garbage collection and eviction.", registers: [this.registry] });
  private readonly clusterFills = new Counter({
    name: "berth_cluster_fills_total",
    help: "Blob fills this replica joined for its clients: led (it fetched for the cluster), followed (another replica fetched) or unshared (fetched alone while Redis was down).",
    labelNames: ["role"] as const,
    registers: [this.registry],
  });
  private readonly clusterFillTakeovers = new Counter({
    name: "berth_cluster_fill_takeovers_total",
    help: "Blob fills this replica took over from a replica that stopped serving them.",
    registers: [this.registry],
  });
  private readonly storageBytes = new Gauge({
    name: "berth_storage_bytes",
    help: "Bytes stored, as of the last content collection: hosted content and mirrored (cache) content.",
    labelNames: ["content"] as const,
    registers: [this.registry],
  });

  constructor(private readonly sources: MetricSources) {
    // Started now, not at the first scrape: the event loop delay monitor measures from then on.
    processRegistry();
    if (sources.coordination) registerCoordinationMetrics(this.registry, sources.coordination);
    const meters = this.meters;
    const perUpstream = (name: string, help: string, labelNames: string[], values: (meter: UpstreamCounters) => [Record<string, string>, number][]) =>
      new Counter({
        name,
        help,
        labelNames: ["upstream", ...labelNames],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const meter of meters.values()) for (const [labels, value] of values(meter)) this.inc({ upstream: meter.host, ...labels }, value);
        },
      });
    perUpstream("berth_cache_hits_total", "Mirrored manifests and blobs answered from berth's store, by upstream and kind.", ["kind"], (m) => KINDS.map((kind) => [{ kind }, m.hits[kind]]));
    perUpstream("berth_cache_misses_total", "Mirrored manifests and blobs that had to come from the upstream, by upstream and kind.", ["kind"], (m) =>
      KINDS.map((kind) => [{ kind }, m.misses[kind]]),
    );
    perUpstream("berth_upstream_requests_total", "Requests to an upstream, by upstream and answer status (error: no answer).", ["status"], (m) =>
      [...m.requests].map(([status, count]) => [{ status: status === 0 ? "error" : String(status) }, count]),
    );
    perUpstream("berth_upstream_received_bytes_total", "Response body bytes received from an upstream.", [], (m) => [[{}, m.receivedBytes]]);
    perUpstream(
      "berth_upstream_refused_redirects_total",
      "Redirects and token realms of an upstream that berth refused to follow: non-public addresses, other schemes, https to http, too many hops.",
      [],
      (m) => [[{}, m.refusedRedirects]],
    );
    perUpstream("berth_blob_fill_coalesced_waiters_total", "Clients that joined a blob fill already in flight instead of starting another upstream fetch.", [], (m) => [
      [{}, m.coalescedWaiters],
    ]);
    new Gauge({
      name: "berth_blob_fills_in_flight",
      help: "Blobs being fetched from upstreams now.",
      registers: [this.registry],
      collect() {
        this.set(sources.fills.list().length);
      },
    });
    const backingOff = (host: string) => this.backingOff(host).length;
    new Gauge({
      name: "berth_upstream_backoff_keys",
      help: "Repositories of an upstream that berth is backing off from now.",
      labelNames: ["upstream"] as const,
      registers: [this.registry],
      collect() {
        for (const { host } of sources.upstreams) this.set({ upstream: host }, backingOff(host));
      },
    });
    for (const { host } of sources.upstreams) this.upstream(host);
  }

  upstream(host: string): UpstreamCounters {
    let meter = this.meters.get(host);
    if (!meter) {
      const labels = { upstream: host };
      meter = new UpstreamCounters(host, (seconds) => this.upstreamLatency.observe(labels, seconds));
      this.meters.set(host, meter);
    }
    return meter;
  }

  collected(report: CollectionTotals): void {
    this.lastCollection = { at: new Date(), report: { ...report } };
    this.collections.inc();
    this.collectionPaused.set(0);
    this.evictions.inc(report.evicted);
    this.collectedBlobs.inc(report.deletedUnreferenced);
    this.freedBytes.inc(report.freedBytes);
    this.storageBytes.set({ content: "hosted" }, report.hostedBytes);
    this.storageBytes.set({ content: "cache" }, report.cacheBytes);
  }

  fill(role: "led" | "followed" | "unshared"): void {
    this.clusterFills.inc({ role });
  }

  takeover(): void {
    this.clusterFillTakeovers.inc();
  }

  collectionSkipped(reason: string): void {
    this.collectionsSkipped.inc({ reason });
    this.collectionPaused.set(reason === "not-leader" ? 0 : 1);
  }

  issued(): void {
    this.tokensIssued.inc();
  }

  refused(code: string): void {
    this.tokenRefusals.inc({ code });
  }

  request(route: RouteKind, status: number, seconds: number, bytes: number, repository: string | undefined): void {
    this.httpRequests.inc({ route, status: String(status) });
    this.httpDuration.observe({ route }, seconds);
    if (bytes > 0) this.httpBytes.inc({ route }, bytes);
    // Only names that were answered: a 404 for an invented name does not take a place in the list.
    if (repository !== undefined && status < 400) this.repositories.add(repository);
  }

  /** The Prometheus text exposition: process metrics, then berth's. */
  async exposition(): Promise<string> {
    const [process, berth] = await Promise.all([processRegistry().metrics(), this.registry.metrics()]);
    return process + berth;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  status(): StatusSnapshot {
    const upstreams = this.sources.upstreams.map(({ host, url }): UpstreamStatus => {
      const meter = this.upstream(host);
      const backingOff = this.backingOff(host);
      const requests = meter.requestCount;
      return {
        host,
        url,
        health: backingOff.length > 0 ? "backing off" : requests === 0 ? "idle" : isFailure(meter.lastStatus) ? "failing" : "ok",
        backingOff,
        requests,
        ...(meter.lastStatus !== undefined ? { lastStatus: meter.lastStatus } : {}),
        ...(meter.lastAnswerAt ? { lastAnswerAt: meter.lastAnswerAt } : {}),
        hits: meter.hits.manifest + meter.hits.blob,
        misses: meter.misses.manifest + meter.misses.blob,
        receivedBytes: meter.receivedBytes,
      };
    });
    return {
      takenAt: new Date(),
      upstreams,
      hits: upstreams.reduce((sum, u) => sum + u.hits, 0),
      misses: upstreams.reduce((sum, u) => sum + u.misses, 0),
      topRepositories: this.repositories.top(10),
      transfers: this.sources.fills.list().map(({ digest, written, size }) => ({ digest, written, ...(size !== undefined ? { size } : {}) })),
      ...(this.lastCollection ? { lastCollection: this.lastCollection } : {}),
      ...(this.sources.coordination ? { coordination: this.sources.coordination() } : {}),
    };
  }

  private backingOff(host: string): { repository: string; remainingMs: number }[] {
    const prefix = `${host}/`;
    return this.sources.backoff
      .snapshot()
      .filter((entry) => entry.remainingMs > 0 && entry.key.startsWith(prefix))
      .map((entry) => ({ repository: entry.key.slice(prefix.length), remainingMs: entry.remainingMs }));
  }
}

function isFailure(status: number | undefined): boolean {
  return status === 0 || status === 429 || (status !== undefined && status >= 500);
}
