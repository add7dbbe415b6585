import { spawn } from "node:child_process";
import { onProcessExit } from "./process-exit.js";

/** What a finished command printed. */
export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** A command that exited non-zero, was killed, or timed out; the message carries its stderr. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export interface CommandOptions {
  /** Added to (not replacing) the test process's environment. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  /** The command is killed after this long (default 5 minutes). */
  timeoutMs?: number;
}

/** Runs a command to completion; resolves with its output when it exits 0, rejects with a CommandError otherwise. */
export function runCommand(file: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const unregister = onProcessExit(() => child.kill("SIGKILL"));
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? 300_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      unregister();
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      unregister();
      const result = { stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8") };
      if (code === 0) return resolve(result);
      const how = timedOut ? "timed out" : signal ? `was killed by ${signal}` : `exited ${code}`;
      const commandLine = [file, ...args].join(" ");
      reject(new CommandError(`${commandLine} ${how}: ${result.stderr.trim().slice(-4000)}`, code, result.stdout, result.stderr));
    });
    if (options.input !== undefined) {
      child.stdin!.on("error", () => {}); // a command may exit without reading its input; its exit code tells
      child.stdin!.end(options.input);
    }
  });
}
