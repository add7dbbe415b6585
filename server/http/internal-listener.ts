import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { pipeline } from "node:stream/promises";
import type { Logger } from "../log.js";
import { Digest } from "../reference/digest.js";
import type { Fill } from "../registry/blob-fill.js";
import { FILLS_PATH, fillFailure, type PeerFillState } from "../registry/fill-peers.js";
import { UpstreamError } from "../upstream/upstream-error.js";
import { parseRangeHeader } from "./byte-range.js";
import { listenOn } from "./listen.js";

/** The fills a replica leads for the others. */
export interface ServedFills {
  /** The fill of `digest` from `source` this replica leads (or just led), if any. */
  served(digest: Digest, source: string): Fill | undefined;
}

export interface InternalListenerOptions {
  /** HOST:PORT; port 0 picks a free one. */
  listen: string;
  /** How the others reach it; default derived from where it listens ($POD_IP for a wildcard host). */
  url?: string;
  /** What every request must present as `Authorization: Bearer <secret>`. */
  secret: string;
}

/**
 * A replica's internal port: what another replica needs of this one, and nothing else. Today
 * that is the fills it leads: `GET /internal/fills/<source>/<digest>/state` (the fill's size and
 * state once the size is known) and `GET /internal/fills/<source>/<digest>` (its bytes, a `Range`
 * of them, the last byte only once the digest verified). A fill that failed at its upstream is a
 * 502 whose body says how; a fill this replica does not serve is a 404. Every request must carry
 * the shared secret; no viewer's access is checked here: the replica asking checks its own
 * client's access to the source before it asks.
 */
export class InternalListener {
  /** What it serves: nothing until the fills are given (they advertise its URL, so they come after it). */
  private fills: ServedFills = { served: () => undefined };

  private constructor(
    private readonly server: Server,
    /** How the other replicas reach this one. */
    readonly url: string,
  ) {}

  static async start(options: InternalListenerOptions, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<InternalListener> {
    // Hashed first: timingSafeEqual compares equal lengths only, and the hash's length says nothing of the secret's.
    const expected = createHash("sha256").update(`Bearer ${options.secret}`).digest();
    let listener: InternalListener | undefined;
    const server = createServer((req, res) => {
      const presented = createHash("sha256").update(req.headers.authorization ?? "").digest();
      if (!timingSafeEqual(presented, expected)) return answer(res, 401, { message: "the internal port takes only requests carrying the replicas' shared secret" });
      serve(listener!.fills, req, res).catch((err: unknown) => {
        log.warn({ err, path: req.url }, "internal port: serving another replica failed");
        if (!res.headersSent) answer(res, 503, { message: "the fill could not be served" });
        else res.destroy();
      });
    });
    // A transfer may wait on the upstream for as long as a client's would.
    server.requestTimeout = 0;
    await listenOn(server, options.listen);
    const url = options.url ?? derivedUrl(server.address() as AddressInfo, env);
    log.info({ listen: options.listen, url }, "internal port serving the other replicas");
    listener = new InternalListener(server, url);
    return listener;
  }

  /** Serves the fills this replica leads. */
  serve(fills: ServedFills): void {
    this.fills = fills;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

async function serve(fills: ServedFills, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const match = new RegExp(`^${FILLS_PATH}/([^/]+)/([^/]+)(/state)?$`).exec(new URL(req.url ?? "/", "http://internal").pathname);
  if (req.method !== "GET" || !match) return answer(res, 404, { message: `the internal port serves GET ${FILLS_PATH}/<source>/<digest>[/state] only` });
  const digest = Digest.parse(match[2]);
  const source = decodeURIComponent(match[1]);
  const fill = digest && fills.served(digest, source);
  if (!fill) return answer(res, 404, { message: "this replica does not serve that fill" });
  await fill.sized;
  if (fill.state === "failed" || fill.size === undefined) return failed(res, fill);
  if (match[3]) return answer(res, 200, { size: fill.size, state: fill.state } satisfies PeerFillState);
  const range = parseRangeHeader(req.headers.range, fill.size);
  if (range === "unsatisfiable") return answer(res, 416, { message: `the range is outside the blob's ${fill.size} bytes` });
  const stream = await fill.open(range);
  res.writeHead(range ? 206 : 200, {
    "content-type": "application/octet-stream",
    "content-length": range ? range.end - range.start + 1 : fill.size,
    ...(range ? { "content-range": `bytes ${range.start}-${range.end}/${fill.size}` } : {}),
  });
  // Sent now, not with the first byte: the follower waits for headers no longer than for a chunk.
  res.flushHeaders();
  if (stream.sendTo) await stream.sendTo(res);
  else await pipeline(stream, res);
}

/** A fill that failed at its upstream says how, so that the replica following it fails the same way; any other failure is this replica's. */
function failed(res: ServerResponse, fill: Fill): void {
  if (fill.error instanceof UpstreamError) return answer(res, 502, fillFailure(fill.error));
  answer(res, 503, { message: "the fill failed here" });
}

function answer(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

function derivedUrl(address: AddressInfo, env: NodeJS.ProcessEnv): string {
  const wildcard = address.address === "0.0.0.0" || address.address === "::";
  const host = wildcard ? (env.POD_IP ?? hostname()) : address.address;
  return `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
}
