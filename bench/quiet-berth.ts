import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { stringify as toYaml } from "yaml";
import { makeTempDir, type TempDir } from "../test/support/temp-dir.js";
import { freeLoopbackPort } from "./free-port.js";
import { ServerProcess } from "./server-process.js";

/** The compiled CLI; this module runs from dist/bench/. `BENCH_BERTH_MAIN` measures another build instead (before/after a change). */
const BERTH_MAIN = process.env.BENCH_BERTH_MAIN ?? resolve(__dirname, "../server/main.js");

/** Where berth serves the mirrored origin: `/v2/origin/REPO/...`. */
export const MIRROR_PREFIX = "origin";

/**
 * berth as production runs it (`node dist/server/main.js serve`), logging at warn: no line
 * per request. That also hides the `listening on` line test/support's BerthProcess waits
 * for, so it listens on a port chosen here and is ready once `/v2/` answers.
 */
export class QuietBerth {
  private constructor(
    private readonly dir: TempDir,
    private readonly server: ServerProcess,
    /** `http://127.0.0.1:PORT`. */
    readonly url: string,
    readonly storageDir: string,
  ) {}

  /** berth with an empty store, mirroring `origin` under the prefix `origin` when given; `config` adds top-level keys (a `storage` section). */
  static async start(origin?: { host: string; url: string }, config: Record<string, unknown> = {}): Promise<QuietBerth> {
    const dir = await makeTempDir("bench-berth");
    try {
      const configPath = join(dir.path, "berth.yml");
      const storageDir = join(dir.path, "storage");
      await mkdir(storageDir);
      await writeFile(
        configPath,
        toYaml({ log: { level: "warn" }, upstreams: origin ? [{ host: origin.host, url: origin.url, prefix: MIRROR_PREFIX }] : [], ...config }),
      );
      const url = `http://127.0.0.1:${await freeLoopbackPort()}`;
      const server = await ServerProcess.start({
        name: "berth",
        command: process.execPath,
        args: [BERTH_MAIN, "serve", "--config", configPath, "--storage", storageDir, "--listen", new URL(url).host],
        probeUrl: `${url}/v2/`,
        logFile: join(dir.path, "berth.log"),
      });
      return new QuietBerth(dir, server, url, storageDir);
    } catch (err) {
      await dir.remove();
      throw err;
    }
  }

  /** `127.0.0.1:PORT`: the name clients use for it (`HOST/REPO:TAG`). */
  get host(): string {
    return new URL(this.url).host;
  }

  get pid(): number {
    return this.server.pid;
  }

  /** Stops berth (SIGTERM) and removes its config and storage. */
  async close(): Promise<void> {
    await this.server.stop();
    await this.dir.remove();
  }
}
