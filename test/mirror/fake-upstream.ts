import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";

/** How the fake answers one path; the default serves the stored content faithfully. */
export type Fault =
  | { kind: "corrupt" }
  | { kind: "truncate"; sendBytes: number }
  | { kind: "stall-after"; sendBytes: number }
  | { kind: "status"; status: number; headers?: Record<string, string> }
  | { kind: "redirect-loop" }
  | { kind: "oversize"; bytes: number }
  | { kind: "wrong-digest-header" }
  /** A redirect to `location` (relative or absolute, any scheme), 307 unless told. */
  | { kind: "redirect"; location: string; status?: number }
  /** Any answer: garbage bodies, odd headers (Link, WWW-Authenticate). */
  | { kind: "answer"; status?: number; headers?: Record<string, string>; body: string | Buffer }
  /** A 200 whose Content-Length says `length`, then silence. */
  | { kind: "declared-length"; length: number }
  /** A chunked 200 that never ends; `sent` counts what was written until the client hung up (`closed`). */
  | { kind: "endless"; sent?: number; closed?: boolean }
  /** A tag list page `{"tags":["tN"]}` linking to page N+1 (`?last=tN`), without end. */
  | { kind: "endless-pages" };

interface Content {
  bytes: Buffer;
  mediaType: string;
}

/**
 * An in-process upstream for faults a real registry cannot produce: corrupt or truncated
 * bytes, stalls, 5xx/429 storms, redirects anywhere, garbage answers, oversized or endless
 * bodies. It counts requests.
 */
export class FakeUpstream {
  private readonly server: Server;
  private readonly content = new Map<string, Content>();
  private readonly faults = new Map<string, Fault>();
  readonly requests: { method: string; path: string; authorization?: string }[] = [];
  /** When set, every request without exactly this Authorization gets a Basic challenge. */
  requiredAuthorization?: string;
  url = "";
  host = "";

  /** Plain HTTP, or HTTPS with `tls`'s PEM key and certificate. */
  constructor(private readonly tls?: { key: Buffer; cert: Buffer }) {
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.server = tls ? createTlsServer(tls, handler) : createServer(handler);
  }

  /** Listens on a free port of `address` (any loopback address: 127.0.0.2 is another host as far as berth's redirect rules go). */
  async start(address = "127.0.0.1"): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, address, resolve));
    const { port } = this.server.address() as AddressInfo;
    this.host = `${address}:${port}`;
    this.url = `${this.tls ? "https" : "http"}://${this.host}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Stores a blob under its digest; returns the digest. */
  addBlob(repository: string, bytes: Buffer): string {
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    this.content.set(`/v2/${repository}/blobs/${digest}`, { bytes, mediaType: "application/octet-stream" });
    return digest;
  }

  /** Stores a manifest under its digest and, when given, a tag; returns the digest. */
  addManifest(repository: string, manifest: object, tag?: string, mediaType = "application/vnd.oci.image.manifest.v1+json"): string {
    const bytes = Buffer.from(JSON.stringify(manifest));
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    this.content.set(`/v2/${repository}/manifests/${digest}`, { bytes, mediaType });
    if (tag) this.content.set(`/v2/${repository}/manifests/${tag}`, { bytes, mediaType });
    return digest;
  }

  setFault(path: string, fault: Fault | undefined): void {
    if (fault) this.faults.set(path, fault);
    else this.faults.delete(path);
  }

  count(method: string, path: string): number {
    return this.requests.filter((r) => r.method === method && r.path === path).length;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const [path, query] = (req.url ?? "/").split("?");
    this.requests.push({ method: req.method ?? "GET", path, authorization: req.headers.authorization });
    if (this.requiredAuthorization !== undefined && req.headers.authorization !== this.requiredAuthorization) {
      res.writeHead(401, { "content-type": "application/json", "www-authenticate": 'Basic realm="fake"' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    if (path === "/v2/" || path === "/v2") {
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
      return;
    }
    const fault = this.faults.get(path);
    if (fault?.kind === "status") {
      res.writeHead(fault.status, { "content-type": "application/json", ...fault.headers }).end('{"errors":[{"code":"UNAVAILABLE"}]}');
      return;
    }
    if (fault?.kind === "redirect-loop") {
      res.writeHead(307, { location: path }).end();
      return;
    }
    if (fault?.kind === "redirect") {
      res.writeHead(fault.status ?? 307, { location: fault.location }).end();
      return;
    }
    if (fault?.kind === "answer") {
      res.writeHead(fault.status ?? 200, fault.headers).end(fault.body);
      return;
    }
    if (fault?.kind === "declared-length") {
      res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json", "content-length": fault.length });
      res.flushHeaders();
      return;
    }
    if (fault?.kind === "endless") {
      if (req.method === "HEAD") res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" }).end();
      else this.writeEndlessly(res, fault);
      return;
    }
    if (fault?.kind === "endless-pages") {
      const page = Number(/(?:^|&)last=t(\d+)/.exec(query ?? "")?.[1] ?? -1) + 1;
      res.writeHead(200, { "content-type": "application/json", link: `<${path}?n=1&last=t${page}>; rel="next"` }).end(JSON.stringify({ name: path, tags: [`t${page}`] }));
      return;
    }
    if (fault?.kind === "oversize") {
      res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json", "content-length": fault.bytes });
      res.end(Buffer.alloc(fault.bytes, 0x20));
      return;
    }
    const content = this.content.get(path);
    if (!content) {
      res.writeHead(404, { "content-type": "application/json" }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      return;
    }
    const digest = `sha256:${createHash("sha256").update(content.bytes).digest("hex")}`;
    const headers: Record<string, string | number> = {
      "content-type": content.mediaType,
      "content-length": content.bytes.length,
      "docker-content-digest": fault?.kind === "wrong-digest-header" ? `sha256:${"0".repeat(64)}` : digest,
    };
    res.writeHead(200, headers);
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    switch (fault?.kind) {
      case "corrupt": {
        const bytes = Buffer.from(content.bytes);
        bytes[bytes.length - 1] ^= 0xff;
        res.end(bytes);
        return;
      }
      case "truncate":
        res.write(content.bytes.subarray(0, fault.sendBytes));
        res.destroy();
        return;
      case "stall-after":
        res.write(content.bytes.subarray(0, fault.sendBytes));
        return;
      default:
        res.end(content.bytes);
    }
  }

  /** Writes 64 KiB chunks for as long as the client reads them. */
  private writeEndlessly(res: ServerResponse, fault: Extract<Fault, { kind: "endless" }>): void {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    fault.sent = 0;
    fault.closed = false;
    res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" });
    const write = () => {
      while (!res.destroyed) {
        fault.sent! += chunk.length;
        if (!res.write(chunk)) return void res.once("drain", write);
      }
    };
    res.once("close", () => (fault.closed = true));
    write();
  }
}
