import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

interface Hold {
  arrived: Promise<void>;
  arrive: () => void;
  released: Promise<void>;
  release: () => void;
}

/**
 * An upstream in front of another (a FakeUpstream) that forwards everything, except that it
 * holds requests for chosen paths until the test releases them: a blob fill stays in flight
 * exactly as long as a test needs.
 */
export class HoldingProxy {
  private readonly server: Server;
  private readonly holds = new Map<string, Hold>();
  host = "";
  url = "";

  constructor(private readonly target: string) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.host = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    this.url = `http://${this.host}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const hold of this.holds.values()) hold.release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Holds the next requests for `path`; `arrived` resolves when one came, `release` lets them through. */
  hold(path: string): { arrived: Promise<void>; release: () => void } {
    let arrive!: () => void;
    let release!: () => void;
    const hold: Hold = { arrived: new Promise((resolve) => (arrive = resolve)), arrive: () => arrive(), released: new Promise((resolve) => (release = resolve)), release: () => release() };
    this.holds.set(path, hold);
    return { arrived: hold.arrived, release: hold.release };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const hold = this.holds.get((req.url ?? "/").split("?")[0]);
    if (hold) {
      hold.arrive();
      await hold.released;
    }
    const forwarded = request(new URL(req.url ?? "/", this.target), { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forwarded.on("error", () => res.destroy());
    req.pipe(forwarded);
  }
}
