import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { onProcessExit } from "../test/support/process-exit.js";

export interface ServerProcessOptions {
  /** Names it in error messages. */
  name: string;
  command: string;
  args: string[];
  /** Ready once a GET of this URL gets any answer. */
  probeUrl: string;
  /** Its stdout and stderr. */
  logFile: string;
}

/**
 * A server the benchmark starts on a port it chose, ready once it answers HTTP: for servers
 * that print no ready line (nginx; berth at log level warn). SIGTERM stops it, also when the
 * benchmark exits early: SIGKILL would leave nginx's workers behind.
 */
export class ServerProcess {
  private constructor(
    private readonly options: ServerProcessOptions,
    private readonly child: ChildProcess,
    private readonly exited: Promise<unknown>,
  ) {}

  static async start(options: ServerProcessOptions): Promise<ServerProcess> {
    const log = createWriteStream(options.logFile);
    const child = spawn(options.command, options.args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    const unregister = onProcessExit(() => child.kill("SIGTERM"));
    const exited = new Promise((resolve) => {
      child.once("exit", resolve);
      child.once("error", resolve); // it never started
    }).finally(() => {
      unregister();
      log.end();
    });
    const server = new ServerProcess(options, child, exited);
    try {
      await server.waitUntilAnswering();
      return server;
    } catch (err) {
      await server.stop();
      throw err;
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** SIGTERM, then SIGKILL if it is still there after 10 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.exited.catch(() => {});
    clearTimeout(timer);
  }

  private async waitUntilAnswering(): Promise<void> {
    for (let attempt = 0; attempt < 400; attempt++) {
      if (this.child.exitCode !== null || this.child.pid === undefined) break;
      const answered = await fetch(this.options.probeUrl).then(
        async (res) => (await res.arrayBuffer(), true),
        () => false,
      );
      if (answered) return;
      await sleep(25);
    }
    const log = await readFile(this.options.logFile, "utf8").catch(() => "");
    throw new Error(`${this.options.name} never answered ${this.options.probeUrl}:\n${log.trim().split("\n").slice(-10).join("\n")}`);
  }
}
