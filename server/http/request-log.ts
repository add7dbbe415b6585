import { randomUUID } from "node:crypto";
import type { NextFunction, Request, Response } from "express";
import type { Logger } from "../log.js";
import type { RequestMetrics, RouteKind } from "../metrics/registry-metrics.js";
import type { V2Path } from "./v2-path.js";

export const REQUEST_ID_HEADER = "X-Request-Id";

/** A client's own request id is kept when it is short printable ASCII; anything else gets a fresh one. */
const CLIENT_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** Where the /v2 handler leaves the parsed path, so the log names the route kind and repository. */
export function noteV2Path(res: Response, path: V2Path): void {
  res.locals.v2Path = path;
}

/**
 * One JSON log line and one metrics record per request, when its response ends or is cut off:
 * method, route kind, repository, status, duration, body bytes and request id. Nothing the
 * client sent beyond that is logged: no headers (Authorization) and no query string (a
 * `password` or `token` there stays out of the log).
 */
export function requestLog(log: Logger, metrics: RequestMetrics) {
  // These lines hold only fields berth fills in, never anything a client sent, so they skip the
  // logger's redaction: pino parses every redaction path and copies the entry on each call, the
  // largest allocation of a request under load.
  const lines = log.child({}, { redact: [] });
  return (req: Request, res: Response, next: NextFunction): void => {
    const started = performance.now();
    const offered = req.headers["x-request-id"];
    const id = typeof offered === "string" && CLIENT_REQUEST_ID.test(offered) ? offered : randomUUID();
    res.setHeader(REQUEST_ID_HEADER, id);
    const path = req.originalUrl.split("?")[0];
    const body = countBodyBytes(res);
    res.once("close", () => {
      const seconds = (performance.now() - started) / 1000;
      const v2Path = res.locals.v2Path as V2Path | undefined;
      const route = v2Path ? (v2Path.kind === "uploads" ? "upload" : v2Path.kind) : routeOfPath(path);
      const repository = v2Path && "name" in v2Path ? repositoryName(v2Path.name, req.query.ns) : undefined;
      metrics.request(route, res.statusCode, seconds, body.bytes, repository);
      const entry = {
        reqId: id,
        method: req.method,
        route,
        ...(repository !== undefined ? { repository } : {}),
        status: res.statusCode,
        durationMs: Math.round(seconds * 10_000) / 10,
        bytes: body.bytes,
        ...(res.writableFinished ? {} : { aborted: true }),
      };
      // Kubelet probes would drown everything else at info.
      if (route === "health") lines.debug(entry, "request");
      else lines.info(entry, "request");
    });
    next();
  };
}

function routeOfPath(path: string): RouteKind {
  const first = path.split("/")[1];
  switch (first) {
    case "token":
      return "token";
    case "healthz":
    case "readyz":
      return "health";
    case "metrics":
    case "ui":
    case "admin":
    case "admission":
      return first;
    default:
      return "other";
  }
}

/** The name as the client addressed it; containerd's `?ns=` names the registry in front. */
function repositoryName(name: string, ns: unknown): string {
  return typeof ns === "string" && ns !== "" ? `${ns}/${name}` : name;
}

/** Counts the body bytes written to the response (not headers): one addition per chunk. */
function countBodyBytes(res: Response): { bytes: number } {
  const counted = { bytes: 0 };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => Response;
  res.write = ((...args: unknown[]) => {
    counted.bytes += chunkLength(args[0], args[1]);
    return write(...args);
  }) as Response["write"];
  res.end = ((...args: unknown[]) => {
    counted.bytes += chunkLength(args[0], args[1]);
    return end(...args);
  }) as Response["end"];
  return counted;
}

function chunkLength(chunk: unknown, encoding: unknown): number {
  if (typeof chunk === "string") return Buffer.byteLength(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
  return chunk instanceof Uint8Array ? chunk.byteLength : 0;
}
