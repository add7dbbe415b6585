import type { ContentKind, UpstreamMeter } from "./registry-metrics.js";

/**
 * One upstream's counts as plain numbers: recording is an increment on the hot path (a blob's
 * every chunk); Prometheus and the status page read them when asked.
 */
export class UpstreamCounters implements UpstreamMeter {
  readonly hits: Record<ContentKind, number> = { manifest: 0, blob: 0 };
  readonly misses: Record<ContentKind, number> = { manifest: 0, blob: 0 };
  coalescedWaiters = 0;
  receivedBytes = 0;
  refusedRedirects = 0;
  /** Requests by answer status; 0 = no answer (connection failed, timed out). */
  readonly requests = new Map<number, number>();
  lastStatus?: number;
  lastAnswerAt?: Date;

  constructor(
    readonly host: string,
    private readonly observeLatency: (seconds: number) => void,
  ) {}

  cacheHit(kind: ContentKind): void {
    this.hits[kind]++;
  }

  cacheMiss(kind: ContentKind): void {
    this.misses[kind]++;
  }

  coalescedWaiter(): void {
    this.coalescedWaiters++;
  }

  request(status: number, seconds: number): void {
    this.requests.set(status, (this.requests.get(status) ?? 0) + 1);
    this.lastStatus = status;
    this.lastAnswerAt = new Date();
    this.observeLatency(seconds);
  }

  received(bytes: number): void {
    this.receivedBytes += bytes;
  }

  refusedRedirect(): void {
    this.refusedRedirects++;
  }

  get requestCount(): number {
    let total = 0;
    for (const count of this.requests.values()) total += count;
    return total;
  }
}
