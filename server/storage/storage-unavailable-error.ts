/**
 * Raised when the store cannot be reached or cannot take a write right now (an object store
 * that is down or keeps failing, a full spool): the client is answered 503 with Retry-After,
 * never left hanging and never sent a wrong byte.
 */
export class StorageUnavailableError extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
