import { createServer } from "node:net";
import { join } from "node:path";
import { createLogger } from "../../server/log.js";
import { RedisConnection } from "../../server/coordination/redis-connection.js";
import { Daemon } from "./daemon.js";
import { makeTempDir, type TempDir } from "./temp-dir.js";

/** A free loopback TCP port, as the OS hands it out (redis-server cannot be told to pick one). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Debian's `redis-server` on a free loopback port, persisting nothing, with its log in a temp
 * dir: what berth's replicas coordinate through. `stop` and `restart` (same port, empty) stand
 * for Redis going away and coming back.
 */
export class RedisServer {
  private constructor(
    private readonly dir: TempDir,
    readonly port: number,
    private daemon: Daemon,
  ) {}

  static async start(): Promise<RedisServer> {
    const dir = await makeTempDir("redis");
    const port = await freePort();
    return new RedisServer(dir, port, await startDaemon(dir, port));
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** A connection as a replica opens one (keys under `test:`, commands given 500 ms), for tests that act as replicas themselves. */
  connect(): Promise<RedisConnection> {
    return RedisConnection.open({ url: this.url, keyPrefix: "test:", commandTimeoutMs: 500 }, createLogger("silent"));
  }

  async stop(): Promise<void> {
    await this.daemon.stop();
  }

  async restart(): Promise<void> {
    await this.daemon.stop();
    this.daemon = await startDaemon(this.dir, this.port);
  }

  async close(): Promise<void> {
    await this.daemon.stop();
    await this.dir.remove();
  }
}

async function startDaemon(dir: TempDir, port: number): Promise<Daemon> {
  const { daemon } = await Daemon.start({
    name: "redis-server",
    command: "redis-server",
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir.path, "--protected-mode", "no"],
    readyLine: /Ready to accept connections/,
    logFile: join(dir.path, "redis.log"),
  });
  return daemon;
}
