export interface BackoffSchedule {
  initialMs: number;
  maxMs: number;
}

/** The kubelet's ImagePullBackOff schedule: 10 s doubling to 300 s. */
export const KUBELET_BACKOFF: BackoffSchedule = { initialMs: 10_000, maxMs: 300_000 };

interface BackoffEntry {
  delayMs: number;
  until: number;
}

/**
 * Tracks failing upstream keys (upstream + repository) so berth does not hammer them:
 * each failure doubles the quiet period, the first success clears it.
 */
export interface UpstreamBackoff {
  /** Milliseconds until `key` may be tried again; 0 when it may be tried now. */
  remaining(key: string): number;
  /** Records a failure; `retryAfterMs` (from a 429/503 Retry-After) overrides the schedule. Returns the wait. */
  failure(key: string, retryAfterMs?: number): number;
  success(key: string): void;
  snapshot(): { key: string; remainingMs: number; delayMs: number }[];
}

/** The backoff of a single process, in memory. */
export class LocalUpstreamBackoff implements UpstreamBackoff {
  private readonly entries = new Map<string, BackoffEntry>();

  constructor(
    private readonly schedule: BackoffSchedule = KUBELET_BACKOFF,
    private readonly now: () => number = Date.now,
  ) {}

  remaining(key: string): number {
    const entry = this.entries.get(key);
    return entry ? Math.max(0, entry.until - this.now()) : 0;
  }

  failure(key: string, retryAfterMs?: number): number {
    const previous = this.entries.get(key);
    const delayMs = previous ? Math.min(previous.delayMs * 2, this.schedule.maxMs) : this.schedule.initialMs;
    const wait = retryAfterMs ?? delayMs;
    this.entries.set(key, { delayMs, until: this.now() + wait });
    return wait;
  }

  success(key: string): void {
    this.entries.delete(key);
  }

  snapshot(): { key: string; remainingMs: number; delayMs: number }[] {
    return [...this.entries].map(([key, e]) => ({ key, remainingMs: Math.max(0, e.until - this.now()), delayMs: e.delayMs }));
  }
}
