import { z } from "zod";

export const ADMISSION_API_VERSION = "admission.k8s.io/v1";

/** A review berth cannot answer with an AdmissionReview (no request uid to echo): answered 400. */
export class MalformedReviewError extends Error {}

const got = (input: unknown) => (input === undefined ? "and it is missing" : `not ${JSON.stringify(input)}`);

const groupVersionKind = z.object({ group: z.string(), version: z.string(), kind: z.string() }).loose();

const admissionReviewSchema = z
  .object({
    apiVersion: z.literal(ADMISSION_API_VERSION, { error: (issue) => `must be ${ADMISSION_API_VERSION} (berth's webhook takes admissionReviewVersions: [v1]), ${got(issue.input)}` }),
    kind: z.literal("AdmissionReview", { error: (issue) => `must be AdmissionReview, ${got(issue.input)}` }),
    request: z
      .object({
        uid: z.string().min(1),
        kind: groupVersionKind,
        operation: z.string(),
        namespace: z.string().optional(),
        subResource: z.string().optional(),
        dryRun: z.boolean().optional(),
        object: z.unknown().optional(),
        oldObject: z.unknown().optional(),
      })
      .loose(),
  })
  .loose();

export type AdmissionRequest = z.output<typeof admissionReviewSchema>["request"];

/** A JSONPatch operation (RFC 6902), as far as berth writes them. */
export interface PatchOperation {
  op: "add" | "replace";
  path: string;
  value: unknown;
}

export interface AdmissionDecision {
  allowed: boolean;
  patch?: PatchOperation[];
  warnings?: string[];
  /** Why a request was refused (`allowed: false`). */
  status?: { code: number; reason: string; message: string };
}

/** Reads an AdmissionReview request body; throws MalformedReviewError saying what is wrong. */
export function parseAdmissionReview(body: unknown): AdmissionRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new MalformedReviewError("not an AdmissionReview: the body is not a JSON object");
  if (Object.keys(body).length === 0) throw new MalformedReviewError("not an AdmissionReview: the body is empty");
  const result = admissionReviewSchema.safeParse(body);
  if (result.success) return result.data.request;
  const issue = result.error.issues[0];
  const where = issue.path.length > 0 ? issue.path.join(".") : "the body";
  throw new MalformedReviewError(`not an AdmissionReview: ${where}: ${issue.message}`);
}

/** The AdmissionReview answering `uid`: a patch goes as base64 JSONPatch, and only when there is one. */
export function admissionReviewResponse(uid: string, decision: AdmissionDecision): Record<string, unknown> {
  const response: Record<string, unknown> = { uid, allowed: decision.allowed };
  if (decision.patch && decision.patch.length > 0) {
    response.patchType = "JSONPatch";
    response.patch = Buffer.from(JSON.stringify(decision.patch)).toString("base64");
  }
  if (decision.warnings && decision.warnings.length > 0) response.warnings = decision.warnings;
  if (decision.status) response.status = decision.status;
  return { apiVersion: ADMISSION_API_VERSION, kind: "AdmissionReview", response };
}

const STATUS_REASONS: Record<number, string> = {
  400: "BadRequest",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  413: "RequestEntityTooLarge",
  415: "UnsupportedMediaType",
  500: "InternalError",
};

/** A Kubernetes `Status` for a review berth cannot answer, as the API server reads HTTP errors. */
export function failureStatus(code: keyof typeof STATUS_REASONS, message: string): Record<string, unknown> {
  return { kind: "Status", apiVersion: "v1", status: "Failure", code, reason: STATUS_REASONS[code], message };
}
