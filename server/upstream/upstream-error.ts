export type UpstreamFailure =
  /** Connection refused, reset, DNS, TLS, timeouts: the upstream could not be asked. */
  | "unreachable"
  /** 5xx or a nonsensical answer. */
  | "server"
  /** 429. */
  | "rate-limited"
  /** Every credential tried was refused (401/403). */
  | "denied"
  /** 404: the upstream has no such thing. */
  | "not-found"
  /** The upstream's bytes are not what was asked for (digest or size mismatch). */
  | "corrupt"
  /**
   * A definite answer berth refuses: not what the protocol says (a tag list, token or referrers
   * index that does not parse, a challenge without a realm), beyond a size or count limit, or a
   * redirect or token realm pointing where berth does not go (destination-policy.ts).
   */
  | "invalid";

/** A failed upstream request. Messages name the upstream and path, never credentials. */
export class UpstreamError extends Error {
  constructor(
    readonly failure: UpstreamFailure,
    message: string,
    readonly options: {
      status?: number;
      retryAfterMs?: number;
      cause?: unknown;
      /** For "invalid": what berth refused, in words its client may be told (the message, for the log, has the details). */
      reason?: string;
    } = {},
  ) {
    super(message, { cause: options.cause });
  }

  /** Failures that say the upstream is unhealthy (as opposed to a definite answer). */
  get isOutage(): boolean {
    return this.failure === "unreachable" || this.failure === "server" || this.failure === "rate-limited";
  }
}

/** Parses Retry-After (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
