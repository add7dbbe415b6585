import type { Request, Response } from "express";
import { asRegistryError } from "../registry/errors.js";
import type { Logger } from "../log.js";

export const API_VERSION_HEADER = "Docker-Distribution-API-Version";

/** Sends the distribution-spec error document for an error (see asRegistryError). */
export function sendError(req: Request, res: Response, err: unknown, log: Logger): void {
  const error = asRegistryError(err);
  if (error.status >= 500) log.error({ err, method: req.method, path: req.path }, "request failed");
  if (res.headersSent) {
    res.destroy(err instanceof Error ? err : undefined);
    return;
  }
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  const entry: Record<string, unknown> = { code: error.code, message: error.message };
  if (error.detail !== undefined) entry.detail = error.detail;
  const body = JSON.stringify({ errors: [entry] });
  res.status(error.status).setHeader("Content-Type", "application/json");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(req.method === "HEAD" ? undefined : body);
}

/** Sends a JSON document with an explicit length. */
export function sendJson(res: Response, status: number, value: unknown, contentType = "application/json"): void {
  const body = Buffer.from(JSON.stringify(value));
  res.status(status).setHeader("Content-Type", contentType);
  res.setHeader("Content-Length", body.length);
  res.end(res.req.method === "HEAD" ? undefined : body);
}

/** An empty answer (202/201/204) with its headers; a list sends one header line per value. */
export function sendEmpty(res: Response, status: number, headers: Record<string, string | string[]> = {}): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (status !== 204) res.setHeader("Content-Length", "0");
  res.status(status).end();
}
