import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

/** What the proxy does with connections: forward them, refuse them (reset), or take them and never answer. */
export type FaultMode = "forward" | "refuse" | "stall";

/**
 * A TCP proxy on loopback in front of a real server, whose mode a test switches to produce
 * the outages a real store has: connections reset, or taken and left hanging. Switching
 * mode cuts the connections open so far.
 */
export class FaultProxy {
  private mode: FaultMode = "forward";
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  url = "";

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => {
      this.sockets.add(client);
      client.once("close", () => this.sockets.delete(client));
      client.on("error", () => {});
      if (this.mode === "refuse") return client.resetAndDestroy();
      if (this.mode === "stall") return;
      const upstream = connect(this.target.port, this.target.host);
      this.sockets.add(upstream);
      upstream.once("close", () => this.sockets.delete(upstream));
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    });
  }

  /** A proxy for `targetUrl` (http://HOST:PORT); its own `url` has the same scheme. */
  static async start(targetUrl: string): Promise<FaultProxy> {
    const target = new URL(targetUrl);
    const proxy = new FaultProxy({ host: target.hostname, port: Number(target.port) });
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    proxy.url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    return proxy;
  }

  set(mode: FaultMode): void {
    this.mode = mode;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  async close(): Promise<void> {
    this.set("refuse");
    await new Promise((resolve) => this.server.close(resolve));
  }
}
