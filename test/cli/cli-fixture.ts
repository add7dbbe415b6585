import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { onProcessExit } from "../support/process-exit.js";

/** The compiled CLI; this module runs from dist/test/cli/. */
const BERTH_MAIN = resolve(__dirname, "../../server/main.js");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  /** Runs under `script`, so stdout and stderr are a terminal (both then arrive in `stdout`). */
  tty?: boolean;
}

/** `berth ARGS...` as a user runs it; never rejects on a non-zero exit. */
export function runBerth(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const quoted = [process.execPath, BERTH_MAIN, ...args].map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`).join(" ");
  const [file, argv] = options.tty ? ["script", ["-qec", quoted, "/dev/null"]] : [process.execPath, [BERTH_MAIN, ...args]];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, argv as string[], { env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
    const unregister = onProcessExit(() => child.kill("SIGKILL"));
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", (err) => {
      unregister();
      reject(err);
    });
    child.on("close", (code) => {
      unregister();
      resolvePromise({ code, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8") });
    });
  });
}

/** Lines of an output, without the empty last one. */
export function lines(text: string): string[] {
  return text.split(/\r?\n/).filter((line) => line !== "");
}

/** A loopback port nothing listens on: one the OS just handed out and took back. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolvePromise) => server.listen(0, "127.0.0.1", resolvePromise));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolvePromise) => server.close(() => resolvePromise()));
  return port;
}
