import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { onProcessExit } from "../test/support/process-exit.js";
import { makeTempDir, type TempDir } from "../test/support/temp-dir.js";
import { freeLoopbackPort } from "./free-port.js";

/**
 * nginx serving one directory as static files with `sendfile on`: the practical limit for
 * serving a blob over HTTP. Its config, logs and temp paths live in a temp dir of its own.
 */
export class NginxStatic {
  private constructor(
    private readonly dir: TempDir,
    private readonly child: ChildProcess,
    private readonly exited: Promise<unknown>,
    /** `http://127.0.0.1:PORT`. */
    readonly url: string,
  ) {}

  /** Starts it (master and one worker per core) and waits until it answers. */
  static async start(root: string): Promise<NginxStatic> {
    const dir = await makeTempDir("nginx");
    const port = await freeLoopbackPort();
    await mkdir(join(dir.path, "temp"));
    const configPath = join(dir.path, "nginx.conf");
    await writeFile(configPath, config(dir.path, root, port));
    const errorLog = join(dir.path, "error.log");
    const child = spawn("nginx", ["-p", dir.path, "-e", errorLog, "-c", configPath], { stdio: "ignore" });
    // SIGTERM, not SIGKILL: a killed master would leave its workers listening.
    const unregister = onProcessExit(() => child.kill("SIGTERM"));
    const exited = once(child, "exit").finally(unregister);
    const nginx = new NginxStatic(dir, child, exited, `http://127.0.0.1:${port}`);
    try {
      await nginx.waitUntilAnswering(errorLog);
      return nginx;
    } catch (err) {
      await nginx.close();
      throw err;
    }
  }

  /** Stops nginx (fast shutdown) and removes its temp dir. */
  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    await this.exited.catch(() => {});
    await this.dir.remove();
  }

  private async waitUntilAnswering(errorLog: string): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      if (this.child.exitCode !== null) break;
      const answered = await fetch(`${this.url}/`).then(
        async (res) => (await res.arrayBuffer(), true),
        () => false,
      );
      if (answered) return;
      await sleep(25);
    }
    const log = await readFile(errorLog, "utf8").catch(() => "");
    throw new Error(`nginx never answered on ${this.url}: ${log.trim().split("\n").slice(-5).join("\n")}`);
  }
}

function config(dir: string, root: string, port: number): string {
  const temp = join(dir, "temp");
  return `daemon off;
worker_processes auto;
${process.getuid?.() === 0 ? "user root;  # workers would run as nobody, who cannot read our 0700 temp dirs\n" : ""}pid ${join(dir, "nginx.pid")};
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  client_body_temp_path ${temp};
  proxy_temp_path ${temp};
  fastcgi_temp_path ${temp};
  uwsgi_temp_path ${temp};
  scgi_temp_path ${temp};
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`;
}
