import express, { type NextFunction, type Request, type Response } from "express";
import type { Logger } from "../log.js";
import { admissionReviewResponse, failureStatus, MalformedReviewError, parseAdmissionReview } from "./admission-review.js";
import type { AdmissionWebhook } from "./admission-webhook.js";

/** An AdmissionReview carries the object and, on UPDATE, the old one: each up to etcd's 1.5 MiB, JSON-encoded. */
const MAX_REVIEW_BYTES = "8mb";

/** `POST /admission`: AdmissionReview in, AdmissionReview out; a review without a request uid is answered 400. */
export function createAdmissionRoutes(webhook: AdmissionWebhook, log: Logger): express.Router {
  const router = express.Router();
  router.post("/admission", express.json({ limit: MAX_REVIEW_BYTES, type: () => true, strict: false }), async (req: Request, res: Response) => {
    const request = parseAdmissionReview(req.body);
    res.status(200).json(admissionReviewResponse(request.uid, await webhook.review(request)));
  });
  router.all("/admission", (_req, res) => {
    res.setHeader("Allow", "POST");
    res.status(405).json(failureStatus(405, "berth's admission webhook takes POST of an AdmissionReview"));
  });
  router.use("/admission", (err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof MalformedReviewError) {
      res.status(400).json(failureStatus(400, err.message));
      return;
    }
    const status = (err as { status?: number; type?: string }).status;
    if (status === 400 || status === 413 || status === 415) {
      res.status(status).json(failureStatus(status, `not an AdmissionReview: ${(err as Error).message}`));
      return;
    }
    log.error({ err }, "admission review failed");
    res.status(500).json(failureStatus(500, `berth could not review the request: ${(err as Error).message}`));
  });
  return router;
}
