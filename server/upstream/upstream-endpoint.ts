/** Where one upstream is and how long berth waits on it. */
export interface UpstreamEndpoint {
  /** The registry host clients name (`docker.io`, `127.0.0.1:5312`). */
  host: string;
  /** Where berth fetches from. */
  url: string;
  connectTimeoutMs: number;
  /** Longest wait for response headers, and between two chunks of a body; also the window of progress-guard.ts. */
  readTimeoutMs: number;
  /**
   * Sent as `?ns=` with every `/v2/` request to the endpoint's own origin, when `url` is a
   * berth that mirrors `host` (a parent tier): the registry it is asked to route to.
   */
  namespace?: string;
}
