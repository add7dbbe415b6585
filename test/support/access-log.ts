/** One request as Distribution's access log (Apache combined format, on its stdout) records it. */
export interface AccessLogEntry {
  method: string;
  /** The request path, without the query string. */
  path: string;
  /** The raw query string without `?`, or "". */
  query: string;
  status: number;
  /** Response body bytes, 0 when the log says "-". */
  bytes: number;
  userAgent: string;
}

const COMBINED_LOG_LINE = /^\S+ \S+ \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"/;

/** Parses one access-log line; undefined for any other line (Distribution's own logs go to stderr, but be lenient). */
export function parseAccessLogLine(line: string): AccessLogEntry | undefined {
  const match = COMBINED_LOG_LINE.exec(line);
  if (!match) return undefined;
  const [, method, target, status, bytes, userAgent] = match;
  const queryStart = target.indexOf("?");
  return {
    method,
    path: queryStart < 0 ? target : target.slice(0, queryStart),
    query: queryStart < 0 ? "" : target.slice(queryStart + 1),
    status: Number(status),
    bytes: bytes === "-" ? 0 : Number(bytes),
    userAgent,
  };
}

/** How many entries have this method and exactly this path (e.g. `GET`, `/v2/library/pause/blobs/sha256:...`). */
export function countRequests(entries: readonly AccessLogEntry[], method: string, path: string): number {
  return entries.filter((entry) => entry.method === method && entry.path === path).length;
}
