import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTempDir, type TempDir } from "../test/support/temp-dir.js";
import { freeLoopbackPort } from "./free-port.js";
import { ServerProcess } from "./server-process.js";

/**
 * nginx as the practical limit for what berth does: serving files (`sendfile on`), and
 * caching what it proxies from an upstream. Its config, logs, temp paths and cache live in a
 * temp dir of its own.
 */
export class Nginx {
  private constructor(
    private readonly dir: TempDir,
    private readonly server: ServerProcess,
    /** `http://127.0.0.1:PORT`. */
    readonly url: string,
  ) {}

  /** Serves the files under `root`. */
  static serving(root: string): Promise<Nginx> {
    return Nginx.start(() => `root ${root};`);
  }

  /**
   * A caching proxy of `upstreamUrl` with an empty cache: every answer is written to the
   * cache while it is passed on, as a pull-through cache's would be, but nothing is hashed.
   */
  static caching(upstreamUrl: string): Promise<Nginx> {
    return Nginx.start(
      // sendfile off: sending the cached file's pages cost skopeo, receiving them, ~0.4 s of CPU per GiB more here.
      () => `sendfile off;
    location / {
      proxy_pass http://upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache blobs;
      proxy_cache_key $uri;
      proxy_cache_valid 200 1d;
      proxy_cache_lock on;
    }`,
      (dir) => `upstream upstream { server ${new URL(upstreamUrl).host}; keepalive 8; }
  proxy_cache_path ${join(dir, "cache")} levels=1:2 keys_zone=blobs:10m inactive=1d use_temp_path=off;`,
    );
  }

  /** Starts it (a master and one worker per core) and waits until it answers. */
  private static async start(site: (dir: string) => string, http: (dir: string) => string = () => ""): Promise<Nginx> {
    const dir = await makeTempDir("nginx");
    try {
      const port = await freeLoopbackPort();
      await mkdir(join(dir.path, "temp"));
      const configPath = join(dir.path, "nginx.conf");
      await writeFile(configPath, config(dir.path, port, site(dir.path), http(dir.path)));
      const url = `http://127.0.0.1:${port}`;
      const server = await ServerProcess.start({
        name: "nginx",
        command: "nginx",
        args: ["-p", dir.path, "-e", join(dir.path, "error.log"), "-c", configPath],
        probeUrl: `${url}/`,
        logFile: join(dir.path, "output.log"),
      });
      return new Nginx(dir, server, url);
    } catch (err) {
      await dir.remove();
      throw err;
    }
  }

  get host(): string {
    return new URL(this.url).host;
  }

  async close(): Promise<void> {
    await this.server.stop();
    await this.dir.remove();
  }
}

function config(dir: string, port: number, site: string, http: string): string {
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
  ${http}
  server {
    listen 127.0.0.1:${port};
    ${site}
  }
}
`;
}
