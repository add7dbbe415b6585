import type { IncomingMessage, Server, ServerOptions, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/** How long berth waits for a client: by progress, never by a request's total time. */
export interface ClientTimeouts {
  /** A connection moving no byte this long while berth waits for the client is cut; 0 = never. */
  idleTimeout: number;
  /** A request's headers must arrive within this. */
  headersTimeout: number;
}

/**
 * Node's server options for these limits. Node's own `requestTimeout` (300 s for a whole
 * request) would cut any upload slower than its size / 300 s, so it is off. Headers are checked
 * every half `headersTimeout` (Node checks every 30 s by default).
 */
export function serverTimeoutOptions(timeouts: ClientTimeouts): ServerOptions {
  return {
    requestTimeout: 0,
    headersTimeout: timeouts.headersTimeout,
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(timeouts.headersTimeout / 2))),
  };
}

/**
 * Cuts a connection when no byte has moved on it for `idleTimeout` and the wait is the
 * client's: a request body that stopped arriving, a response the client stopped reading, or
 * nothing at all between requests. A wait that is berth's (the request is received and nothing
 * is queued for the client: a digest being verified, an upstream being waited for, a body
 * berth has not read yet) is checked again an `idleTimeout` later.
 */
export function cutStalledClients(server: Server, idleTimeout: number): void {
  if (idleTimeout === 0) return;
  server.timeout = idleTimeout;
  const serving = new WeakMap<Socket, { req: IncomingMessage; res: ServerResponse }>();
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    serving.set(socket, { req, res });
    res.once("close", () => {
      if (serving.get(socket)?.res === res) serving.delete(socket);
    });
  });
  server.on("timeout", (socket: Socket) => {
    const exchange = serving.get(socket);
    if (exchange && waitingOnBerth(exchange.req, exchange.res)) socket.setTimeout(idleTimeout);
    else socket.destroy();
  });
}

function waitingOnBerth(req: IncomingMessage, res: ServerResponse): boolean {
  // Body bytes berth has not taken yet hold the socket paused: the stall is berth's.
  if (!req.complete) return req.readableLength > 0;
  return res.writableLength === 0;
}
