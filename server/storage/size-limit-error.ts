/** Raised when content is larger, or smaller, than the caller allowed. */
export class SizeLimitError extends Error {
  constructor(readonly limit: number) {
    super(`content exceeds ${limit} bytes`);
  }
}
