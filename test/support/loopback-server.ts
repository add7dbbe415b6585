import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** An in-process server on a free loopback port (supertest's own would listen on every interface). */
export interface LoopbackServer {
  server: Server;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Stops at once: no new connections, open ones (kept-alive too) cut. Safe to call more than once. */
  stop(): Promise<void>;
}

export async function listenOnLoopback(handler: RequestListener): Promise<LoopbackServer> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  let stopped: Promise<void> | undefined;
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () =>
      (stopped ??= new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
