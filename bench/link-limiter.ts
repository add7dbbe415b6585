import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";

/**
 * A loopback TCP relay in front of a server whose answers all share one link of a fixed
 * bandwidth: an upstream far away, as a mirror's upstream usually is, where on loopback the
 * origin answers as fast as the machine can copy. Requests pass unlimited.
 */
export class LinkLimiter {
  /** When the link has sent everything scheduled so far (performance.now() ms). */
  private busyUntil = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    private readonly bytesPerSecond: number,
  ) {}

  static async start(target: { host: string }, bytesPerSecond: number): Promise<LinkLimiter> {
    const [targetHost, targetPort] = splitHost(target.host);
    let limiter: LinkLimiter | undefined;
    const server = createServer((client) => limiter!.relay(client, targetHost, targetPort));
    limiter = new LinkLimiter(server, bytesPerSecond);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return limiter;
  }

  /** `127.0.0.1:PORT`. */
  get host(): string {
    const { port } = this.server.address() as { port: number };
    return `127.0.0.1:${port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private relay(client: Socket, host: string, port: number): void {
    const upstream = connect(port, host);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      upstream.pause();
      setTimeout(() => {
        if (client.write(chunk)) upstream.resume();
        else client.once("drain", () => upstream.resume());
      }, this.transmit(chunk.length));
    });
    upstream.on("end", () => client.end());
  }

  /** Books `bytes` on the link after everything already booked; returns ms until they have gone through. */
  private transmit(bytes: number): number {
    const now = performance.now();
    this.busyUntil = Math.max(now, this.busyUntil) + (bytes * 1000) / this.bytesPerSecond;
    return this.busyUntil - now;
  }
}

function splitHost(host: string): [string, number] {
  const colon = host.lastIndexOf(":");
  return [host.slice(0, colon), Number(host.slice(colon + 1))];
}
