import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { performance } from "node:perf_hooks";

/**
 * How far ahead of the link's schedule bytes may go: timers fire at 1 ms at best, so waiting
 * out each 64 KiB chunk's 0.6 ms at 100 MiB/s would halve the rate.
 */
const BURST_MS = 10;

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
    let delayed = 0;
    let ended = false;
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        this.sockets.delete(socket);
        // A server that closes right after its answer (a 401 with Connection: close) still has
        // that answer delivered: the client's end follows the last chunk held back for the link.
        if (socket === upstream && ended && delayed > 0) return;
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    const forward = (chunk: Buffer) => {
      if (!client.write(chunk)) {
        upstream.pause();
        client.once("drain", () => upstream.resume());
      }
    };
    upstream.on("data", (chunk: Buffer) => {
      const wait = this.transmit(chunk.length) - BURST_MS;
      if (wait <= 0) return forward(chunk);
      delayed++;
      upstream.pause();
      setTimeout(() => {
        forward(chunk);
        delayed--;
        if (ended && delayed === 0) client.end();
        else if (!client.writableNeedDrain) upstream.resume();
      }, wait);
    });
    upstream.on("end", () => {
      ended = true;
      if (delayed === 0) client.end();
    });
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
