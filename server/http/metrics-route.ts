import express from "express";

/** What /metrics serves: the Prometheus text exposition and its content type. */
export interface MetricsExposition {
  exposition(): Promise<string>;
  readonly contentType: string;
}

/** `/metrics` for Prometheus to scrape. */
export function createMetricsRoute(metrics: MetricsExposition): express.Router {
  const router = express.Router();
  router.get("/metrics", async (_req, res) => {
    const body = await metrics.exposition();
    res.status(200).setHeader("Content-Type", metrics.contentType);
    res.setHeader("Cache-Control", "no-store");
    res.end(body);
  });
  return router;
}
