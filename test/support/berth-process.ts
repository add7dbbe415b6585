import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { stringify as toYaml } from "yaml";
import { Daemon, type DaemonExit } from "./daemon.js";
import { storageConfigFor, testStorageDriver } from "./storage-drivers.js";
import { makeTempDir, type TempDir } from "./temp-dir.js";

/** The compiled CLI; this module runs from dist/test/support/. */
const BERTH_MAIN = resolve(__dirname, "../../server/main.js");

export interface BerthProcessOptions {
  /** berth's config file as an object, written as YAML; the harness sets `listen` and the storage root on the command line. */
  config?: Record<string, unknown>;
  /** Storage to use (and keep); default a fresh dir inside berth's temp dir. */
  storageDir?: string;
  /** Added to the process environment. */
  env?: NodeJS.ProcessEnv;
}

/**
 * berth itself, as production runs it: `node dist/server/main.js serve --config FILE
 * --listen 127.0.0.1:PORT --storage DIR` on a free loopback port, ready once it logs
 * `listening on`. It can be stopped (SIGTERM), crashed (SIGKILL) and restarted on the same
 * port and storage; its logs are kept for a failing test's message.
 */
export class BerthProcess {
  private constructor(
    private readonly dir: TempDir,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv | undefined,
    private daemon: Daemon,
    /** `http://127.0.0.1:PORT`. */
    readonly url: string,
    readonly storageDir: string,
    /** The `storage` section berth runs with, when the test run put it on S3 (testStorageDriver()). */
    readonly storage?: Record<string, unknown>,
  ) {}

  static async start(options: BerthProcessOptions = {}): Promise<BerthProcess> {
    const dir = await makeTempDir("berth");
    try {
      const configPath = join(dir.path, "berth.yml");
      const storageDir = options.storageDir ?? join(dir.path, "storage");
      await mkdir(storageDir, { recursive: true });
      const storage = await runStorage(options.config, storageDir);
      await writeFile(configPath, toYaml({ ...options.config, ...(storage ? { storage } : {}) }));
      const args = [BERTH_MAIN, "serve", "--config", configPath, "--storage", storageDir];
      const { daemon, url } = await startDaemon(dir.path, [...args, "--listen", "127.0.0.1:0"], options.env);
      return new BerthProcess(dir, args, options.env, daemon, url, storageDir, storage);
    } catch (err) {
      await dir.remove();
      throw err;
    }
  }

  /** `127.0.0.1:PORT`: the name clients use for it (`HOST/REPO:TAG`). */
  get host(): string {
    return new URL(this.url).host;
  }

  get running(): boolean {
    return this.daemon.running;
  }

  /** The current process's id (it changes with `restart`), e.g. to read its memory and descriptors from /proc. */
  get pid(): number {
    return this.daemon.pid;
  }

  /** Resolves when the current process exits, however. */
  get exited(): Promise<DaemonExit> {
    return this.daemon.exited;
  }

  /** SIGTERM (a pod's graceful shutdown); SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<DaemonExit> {
    return this.daemon.stop(graceMs);
  }

  /** SIGKILL: a crash. */
  kill(): Promise<DaemonExit> {
    return this.daemon.kill();
  }

  /** Starts berth again on the same port, config and storage (stopping it first if it runs). */
  async restart(): Promise<void> {
    await this.daemon.stop();
    const { daemon } = await startDaemon(this.dir.path, [...this.args, "--listen", this.host], this.env);
    this.daemon = daemon;
  }

  /** Stops berth and removes its temp dir (and so its storage, unless `storageDir` was given). */
  async close(): Promise<void> {
    await this.daemon.stop();
    await this.dir.remove();
  }

  /** The last lines berth logged, for a failing test's message. */
  diagnostics(): string {
    return this.daemon.recentStderr();
  }
}

/** One bucket per storage dir, so that berths started on the same storage dir share a store. */
const buckets = new Map<string, Promise<Record<string, unknown>>>();

/** berth's `storage` on S3 when the run selects it and the config names no driver itself. */
async function runStorage(config: Record<string, unknown> | undefined, storageDir: string): Promise<Record<string, unknown> | undefined> {
  const own = config?.storage as Record<string, unknown> | undefined;
  if (testStorageDriver() !== "s3" || own?.driver !== undefined) return undefined;
  if (!buckets.has(storageDir)) buckets.set(storageDir, storageConfigFor("s3", storageDir));
  const { root: _root, ...storage } = await buckets.get(storageDir)!;
  return { ...own, ...storage, s3: { ...(storage.s3 as object), ...(own?.s3 as object | undefined) } };
}

async function startDaemon(dir: string, args: string[], env: NodeJS.ProcessEnv | undefined): Promise<{ daemon: Daemon; url: string }> {
  const { daemon, ready } = await Daemon.start({
    name: "berth",
    command: process.execPath,
    args,
    env,
    readyLine: /listening on (http:\/\/[^"\s]+)/,
    logFile: join(dir, "berth.log"),
  });
  return { daemon, url: ready[1] };
}
