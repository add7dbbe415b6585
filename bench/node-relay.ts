import { createHash } from "node:crypto";
import { Agent, createServer, request } from "node:http";
import { join } from "node:path";
import { makeTempDir, type TempDir } from "../test/support/temp-dir.js";
import { freeLoopbackPort } from "./free-port.js";
import { ServerProcess } from "./server-process.js";

/**
 * The least a Node.js process in the data path costs: each request passed to the upstream
 * and each answer passed back through `node:http`, with nothing hashed and nothing stored.
 * A cache built on Node.js pays this before it does any of a cache's work. With `hashing`,
 * it also hashes every answer with SHA-256, as a cache must to verify what it stores. It runs
 * as a process of its own, like the caches it is compared with.
 */
export class NodeRelay {
  private constructor(
    private readonly dir: TempDir,
    private readonly server: ServerProcess,
    readonly host: string,
  ) {}

  static async start(upstreamUrl: string, hashing = false): Promise<NodeRelay> {
    const dir = await makeTempDir("node-relay");
    try {
      const host = `127.0.0.1:${await freeLoopbackPort()}`;
      const server = await ServerProcess.start({
        name: "node relay",
        command: process.execPath,
        args: [__filename, host, upstreamUrl, ...(hashing ? ["--hash"] : [])],
        probeUrl: `http://${host}/v2/`,
        logFile: join(dir.path, "relay.log"),
      });
      return new NodeRelay(dir, server, host);
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

function relay(listen: string, upstreamUrl: string, hashing: boolean): void {
  const upstream = new URL(upstreamUrl);
  const agent = new Agent({ keepAlive: true });
  const server = createServer((req, res) => {
    const forwarded = request(upstream, { method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host }, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (hashing) {
        const hash = createHash("sha256");
        answer.on("data", (chunk: Buffer) => hash.update(chunk));
        answer.on("end", () => hash.digest());
      }
      answer.pipe(res);
    });
    forwarded.on("error", () => res.destroy());
    req.pipe(forwarded);
  });
  const { hostname, port } = new URL(`http://${listen}`);
  server.listen(Number(port), hostname);
}

if (require.main === module) relay(process.argv[2], process.argv[3], process.argv[4] === "--hash");
