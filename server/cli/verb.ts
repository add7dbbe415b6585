/** Where a verb writes: results on stdout, progress and errors on stderr. */
export interface Terminal {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
}

/** One `berth <verb>`: its help text and what it does. Throwing UsageError exits 2, anything else 1. */
export interface Verb {
  /** One line for `berth --help`. */
  summary: string;
  /** `berth <verb> --help`. */
  help: string;
  run(args: string[], terminal: Terminal): Promise<void>;
}
