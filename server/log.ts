import pino from "pino";

export type Logger = pino.Logger;

/** JSON lines on stderr; stdout stays free for CLI output. */
export function createLogger(level: string = process.env.BERTH_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: undefined, redact: ["*.authorization", "*.password", "*.auth", "*.token"] }, pino.destination(2));
}
