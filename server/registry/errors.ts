import { StorageUnavailableError } from "../storage/storage-unavailable-error.js";

/** The error codes of the distribution-spec, with the HTTP status each is answered with. */
export const ERROR_STATUS = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  PAGINATION_NUMBER_INVALID: 400,
  RANGE_INVALID: 416,
  /** Not in the OCI table: Distribution's code (Docker Registry HTTP API V2), which the OCI conformance suite accepts. */
  TAG_INVALID: 400,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

const MESSAGES: Record<ErrorCode, string> = {
  BLOB_UNKNOWN: "blob unknown to registry",
  BLOB_UPLOAD_INVALID: "blob upload invalid",
  BLOB_UPLOAD_UNKNOWN: "blob upload unknown to registry",
  DIGEST_INVALID: "provided digest did not match uploaded content",
  MANIFEST_BLOB_UNKNOWN: "manifest references a manifest or blob unknown to registry",
  MANIFEST_INVALID: "manifest invalid",
  MANIFEST_UNKNOWN: "manifest unknown to registry",
  NAME_INVALID: "invalid repository name",
  NAME_UNKNOWN: "repository name not known to registry",
  SIZE_INVALID: "provided length did not match content length",
  UNAUTHORIZED: "authentication required",
  DENIED: "requested access to the resource is denied",
  UNSUPPORTED: "the operation is unsupported",
  TOOMANYREQUESTS: "too many requests",
  PAGINATION_NUMBER_INVALID: "invalid number of results requested",
  RANGE_INVALID: "requested range not satisfiable",
  TAG_INVALID: "invalid tag name",
  UNAVAILABLE: "service unavailable",
  UNKNOWN: "unknown error",
};

/** A failure a client can be told about: an OCI error code, a message and optional detail. */
export class RegistryError extends Error {
  readonly status: number;
  /** Extra response headers, e.g. Retry-After for UNAVAILABLE/TOOMANYREQUESTS or Range for 416. */
  readonly headers: Record<string, string>;

  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly detail?: unknown,
    options: { status?: number; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message ?? MESSAGES[code], { cause: options.cause });
    this.status = options.status ?? ERROR_STATUS[code];
    this.headers = options.headers ?? {};
  }
}

/**
 * An upstream's refusal to let the requester see a repository: every credential berth holds
 * for them was refused (401/403). Docker Hub answers so for repositories that do not exist,
 * so a refusal cannot be told from absence.
 */
export class UpstreamDeniedError extends RegistryError {
  constructor(message: string) {
    super("DENIED", message);
  }
}

/**
 * The error a client is told for any failure: a RegistryError as it is; a full disk as 507
 * (Insufficient Storage) and a store that cannot be written (read-only, I/O errors) as 503,
 * so that a client sees why, not an opaque 500; an object store that is down as 503 with
 * Retry-After; anything else as 500 UNKNOWN.
 */
export function asRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const unavailable = storageUnavailable(err);
  if (unavailable) {
    return new RegistryError("UNAVAILABLE", "berth's storage is unavailable; retry later", undefined, { headers: { "Retry-After": String(unavailable.retryAfterSeconds) }, cause: err });
  }
  switch (errnoCode(err)) {
    case "ENOSPC":
    case "EDQUOT":
      return new RegistryError("UNAVAILABLE", "berth's storage is full", undefined, { status: 507, cause: err });
    case "EROFS":
      return new RegistryError("UNAVAILABLE", "berth's storage is read-only", undefined, { cause: err });
    case "EIO":
      return new RegistryError("UNAVAILABLE", "berth's storage failed (I/O error)", undefined, { cause: err });
    default:
      return new RegistryError("UNKNOWN", undefined, undefined, { cause: err });
  }
}

function storageUnavailable(err: unknown): StorageUnavailableError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof StorageUnavailableError) return e;
  }
  return undefined;
}

/** The errno code of an error or of what caused it (a storage error wrapped on its way up). */
function errnoCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return code;
  }
  return undefined;
}
