import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** How the fake answers one path; the default serves the stored content faithfully. */
export type Fault =
  | { kind: "corrupt" }
  | { kind: "truncate"; sendBytes: number }
  | { kind: "stall-after"; sendBytes: number }
  | { kind: "status"; status: number; headers?: Record<string, string> }
  | { kind: "redirect-loop" }
  | { kind: "oversize"; bytes: number }
  | { kind: "wrong-digest-header" };

interface Content {
  bytes: Buffer;
  mediaType: string;
}

/**
 * An in-process upstream for faults a real registry cannot produce: corrupt or truncated
 * bytes, stalls, 5xx/429 storms, redirect loops, oversized manifests. It counts requests.
 */
export class FakeUpstream {
  private readonly server: Server;
  private readonly content = new Map<string, Content>();
  private readonly faults = new Map<string, Fault>();
  readonly requests: { method: string; path: string }[] = [];
  url = "";
  host = "";

  constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    this.host = `127.0.0.1:${port}`;
    this.url = `http://${this.host}`;
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
    const path = (req.url ?? "/").split("?")[0];
    this.requests.push({ method: req.method ?? "GET", path });
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
}
