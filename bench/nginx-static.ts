import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTempDir, type TempDir } from "../test/support/temp-dir.js";
import { freeLoopbackPort } from "./free-port.js";
import { ServerProcess } from "./server-process.js";

/**
 * nginx serving one directory as static files with `sendfile on`: the practical limit for
 * serving a blob over HTTP. Its config, logs and temp paths live in a temp dir of its own.
 */
export class NginxStatic {
  private constructor(
    private readonly dir: TempDir,
    private readonly server: ServerProcess,
    /** `http://127.0.0.1:PORT`. */
    readonly url: string,
  ) {}

  /** Starts it (a master and one worker per core) and waits until it answers. */
  static async start(root: string): Promise<NginxStatic> {
    const dir = await makeTempDir("nginx");
    try {
      const port = await freeLoopbackPort();
      await mkdir(join(dir.path, "temp"));
      const configPath = join(dir.path, "nginx.conf");
      await writeFile(configPath, config(dir.path, root, port));
      const url = `http://127.0.0.1:${port}`;
      const server = await ServerProcess.start({
        name: "nginx",
        command: "nginx",
        args: ["-p", dir.path, "-e", join(dir.path, "error.log"), "-c", configPath],
        probeUrl: `${url}/`,
        logFile: join(dir.path, "output.log"),
      });
      return new NginxStatic(dir, server, url);
    } catch (err) {
      await dir.remove();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.server.stop();
    await this.dir.remove();
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
