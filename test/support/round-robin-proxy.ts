import { Agent, request, type IncomingMessage, type ServerResponse } from "node:http";
import { listenOnLoopback } from "./loopback-server.js";

/** Headers of one hop that a proxy must not pass on. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

/** A loopback HTTP proxy that sends each request, not each connection, to the next of `targets`. */
export interface RoundRobinProxy {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Points it at other targets (replicas restarted on new ports). */
  retarget(targets: readonly string[]): void;
  stop(): Promise<void>;
}

/**
 * A Service in front of replicas with no session affinity, at its most unfavourable: a POST, its
 * PATCHes and its PUT each land on a different replica. The Host header is passed as sent, so
 * what a replica puts in an absolute URL names the proxy. A client that goes away mid-request
 * cuts the request to the replica too.
 */
export async function startRoundRobinProxy(targets: readonly string[]): Promise<RoundRobinProxy> {
  let current = targets.map((target) => new URL(target));
  let turn = 0;
  const agent = new Agent({ keepAlive: true });
  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const target = current[turn++ % current.length];
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !HOP_BY_HOP.has(name)));
    if (req.headers["transfer-encoding"]) headers["transfer-encoding"] = req.headers["transfer-encoding"];
    const upstream = request({ agent, host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (answer) => {
      const lines: string[] = [];
      for (let i = 0; i < answer.rawHeaders.length; i += 2) {
        if (!HOP_BY_HOP.has(answer.rawHeaders[i].toLowerCase())) lines.push(answer.rawHeaders[i], answer.rawHeaders[i + 1]);
      }
      res.writeHead(answer.statusCode!, answer.statusMessage, lines);
      answer.pipe(res);
      answer.once("error", () => res.destroy());
      answer.once("aborted", () => res.destroy());
    });
    upstream.once("error", () => res.destroy());
    res.once("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };
  const server = await listenOnLoopback(forward);
  return {
    url: server.url,
    retarget: (next) => {
      current = next.map((target) => new URL(target));
    },
    stop: async () => {
      await server.stop();
      agent.destroy();
    },
  };
}
