/** The command line was wrong (exit 2); the message says how, in one line. */
export class UsageError extends Error {}

/** An operation that failed (exit 1); the message is the whole reason, one line. */
export class OperationError extends Error {}
