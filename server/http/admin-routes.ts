import express, { type NextFunction, type Request, type Response } from "express";
import type { ContentCollector } from "../registry/content-collector.js";
import { RegistryError } from "../registry/errors.js";

/**
 * `/admin/*`: operations for `berth gc` and friends. Answered to loopback clients only, so
 * they are reached from berth's own host or pod (`kubectl exec ... berth gc`), never
 * through a hostPort or a Service.
 */
export function createAdminRoutes(deps: { collector: ContentCollector }): express.Router {
  const router = express.Router();
  router.use("/admin", (req: Request, _res: Response, next: NextFunction) => {
    if (isLoopback(req.socket.remoteAddress)) return next();
    next(new RegistryError("DENIED", "berth's admin endpoints answer loopback clients only: run the command on berth's host or in its pod"));
  });
  router.post("/admin/gc", async (_req: Request, res: Response) => {
    res.status(200).json(await deps.collector.run());
  });
  return router;
}

/** True for 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6. */
export function isLoopback(address: string | undefined): boolean {
  return address !== undefined && (address === "::1" || /^(::ffff:)?127\.\d+\.\d+\.\d+$/i.test(address));
}
