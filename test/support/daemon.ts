import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { onProcessExit } from "./process-exit.js";

export interface DaemonOptions {
  /** Names the daemon in error messages. */
  name: string;
  command: string;
  args: readonly string[];
  /** Added to (not replacing) the test process's environment. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** A line on stdout or stderr that says the daemon is ready; `start` resolves with its match. */
  readyLine: RegExp;
  /** How long to wait for `readyLine` (default 30 s). */
  readyTimeoutMs?: number;
  /** Both streams are appended here, so a restarted daemon's log continues the same file. */
  logFile: string;
  /** Sees every stdout line (e.g. an access log), in order. */
  onStdoutLine?: (line: string) => void;
}

/** How a daemon ended. */
export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A long-running child process (a registry, containerd, berth): started and awaited until
 * it prints its ready line, logged to a file, killed when the test process exits.
 */
export class Daemon {
  /** Resolves when the process has exited, however. */
  readonly exited: Promise<DaemonExit>;
  private exit: DaemonExit | undefined;
  private readonly stderrTail: string[] = [];

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    log: WriteStream,
  ) {
    const unregister = onProcessExit(() => child.kill("SIGKILL"));
    this.exited = new Promise<DaemonExit>((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
      // A command that cannot be spawned never emits "exit".
      child.once("error", () => child.pid === undefined && resolve({ code: null, signal: null }));
    }).then(async (exit) => {
      unregister();
      this.exit = exit;
      await new Promise((resolve) => log.end(resolve));
      return exit;
    });
  }

  /** Spawns the daemon and waits for its ready line; rejects (and kills it) if it exits or times out first. */
  static async start(options: DaemonOptions): Promise<{ daemon: Daemon; ready: RegExpExecArray }> {
    const log = createWriteStream(options.logFile, { flags: "a" });
    const child = spawn(options.command, options.args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const daemon = new Daemon(options.name, child, log);
    let onReady: (match: RegExpExecArray) => void = () => {};
    const ready = new Promise<RegExpExecArray>((resolve) => (onReady = resolve));
    let isReady = false;
    const watch = (line: string) => {
      if (isReady) return;
      const match = options.readyLine.exec(line);
      if (match) {
        isReady = true;
        onReady(match);
      }
    };
    // Output can still arrive after "exit", when the log is closed.
    const record = (line: string) => log.writableEnded || log.write(`${line}\n`);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      record(line);
      watch(line);
      options.onStdoutLine?.(line);
    });
    createInterface({ input: child.stderr! }).on("line", (line) => {
      record(line);
      daemon.stderrTail.push(line);
      if (daemon.stderrTail.length > 40) daemon.stderrTail.shift();
      watch(line);
    });
    const spawnFailed = once(child, "error").then(([err]) => Promise.reject(err as Error));
    // "close" (stdio drained) rather than "exit", so that the message has its last words.
    const exitedEarly = once(child, "close").then(async () => Promise.reject(daemon.failure(`exited (${describe(await daemon.exited)}) before it was ready`)));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(daemon.failure("was not ready in time")), options.readyTimeoutMs ?? 30_000);
    });
    try {
      return { daemon, ready: await Promise.race([ready, spawnFailed, exitedEarly, timeout]) };
    } catch (err) {
      await daemon.kill();
      throw err;
    } finally {
      clearTimeout(timer);
      exitedEarly.catch(() => {});
      spawnFailed.catch(() => {});
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 10_000): Promise<DaemonExit> {
    if (!this.running) return this.exited;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL: a crash, as far as the daemon can tell. */
  async kill(): Promise<DaemonExit> {
    if (this.running) this.child.kill("SIGKILL");
    return this.exited;
  }

  /** An error naming the daemon, with the last lines it wrote on stderr. */
  failure(what: string): Error {
    return new Error(`${this.name} ${what}; last stderr lines:\n${this.stderrTail.join("\n")}`);
  }

  /** The last lines the daemon wrote on stderr. */
  recentStderr(): string {
    return this.stderrTail.join("\n");
  }
}

function describe(exit: DaemonExit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}
