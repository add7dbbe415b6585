/**
 * What berth's layers report as they work. The registry, upstream and auth layers depend on
 * these interfaces only; server/metrics implements them for Prometheus and the status page.
 */

export type ContentKind = "manifest" | "blob";

/** Everything counted about one upstream; one meter per upstream, made once and kept. */
export interface UpstreamMeter {
  /** A mirrored manifest or blob answered from berth's store. */
  cacheHit(kind: ContentKind): void;
  /** A mirrored manifest or blob that had to come from the upstream. */
  cacheMiss(kind: ContentKind): void;
  /** A client joined a blob fill already in flight instead of starting another fetch. */
  coalescedWaiter(): void;
  /** One HTTP exchange with the upstream: its status (0 when no answer came) and seconds to its headers. */
  request(status: number, seconds: number): void;
  /** Response body bytes received from the upstream. */
  received(bytes: number): void;
  /** A redirect or token realm berth refused to follow (server/upstream/destination-policy.ts). */
  refusedRedirect(): void;
}

/** The totals of one content collection (a `CollectionReport`). */
export interface CollectionTotals {
  hostedBytes: number;
  cacheBytes: number;
  deletedUnreferenced: number;
  evicted: number;
  freedBytes: number;
}

export interface RegistryMetrics {
  upstream(host: string): UpstreamMeter;
  collected(report: CollectionTotals): void;
  /** A collection this process did not run: `not-leader`, `coordination-down`, `coordination-recovering`. */
  collectionSkipped(reason: string): void;
}

export interface TokenMetrics {
  issued(): void;
  /** `code` is the token error code (`UNAUTHORIZED`, `UNSUPPORTED_VALUE`, ...). */
  refused(code: string): void;
}

/** What a request is, for metrics: the kind of route, never its raw path. */
export type RouteKind = "base" | "catalog" | "manifest" | "blob" | "upload" | "tags" | "referrers" | "token" | "health" | "metrics" | "ui" | "admin" | "admission" | "other";

export interface RequestMetrics {
  /** One finished request; `repository` as the client named it, when the route has one. */
  request(route: RouteKind, status: number, seconds: number, bytes: number, repository: string | undefined): void;
}

const NO_METER: UpstreamMeter = {
  cacheHit: () => {},
  cacheMiss: () => {},
  coalescedWaiter: () => {},
  request: () => {},
  received: () => {},
  refusedRedirect: () => {},
};

/** For components built without metrics (offline `berth gc`, unit tests). */
export const NO_METRICS: RegistryMetrics & TokenMetrics & RequestMetrics = {
  upstream: () => NO_METER,
  collected: () => {},
  collectionSkipped: () => {},
  issued: () => {},
  refused: () => {},
  request: () => {},
};
