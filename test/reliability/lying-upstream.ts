import { createHash } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** How the upstream answers one path, written byte by byte onto the socket: HTTP/1.1 as a broken or lying server speaks it. */
export type Lie =
  /** A well-formed 200 with the content; the baseline. */
  | { kind: "honest"; body: Buffer }
  /** Content-Length says `declared` while `body` is sent, then the connection closes (or stays open). */
  | { kind: "content-length"; body: Buffer; declared: number; keepOpen?: boolean }
  /** No Content-Length: the body ends where the connection closes (HTTP/1.0 style). */
  | { kind: "close-delimited"; body: Buffer }
  /** An honest Content-Length, the body dripped `bytes` every `intervalMs`. */
  | { kind: "trickle-body"; body: Buffer; bytes: number; intervalMs: number }
  /** The status line and headers dripped one byte every `intervalMs`. */
  | { kind: "trickle-headers"; body: Buffer; intervalMs: number }
  /** `sendBytes` of the body, then a TCP reset. */
  | { kind: "reset"; body: Buffer; sendBytes: number }
  /** A status (5xx, 429) with an OCI error body, after `delayMs`. */
  | { kind: "status"; status: number; headers?: Record<string, string>; delayMs?: number }
  /** The request is read and never answered. */
  | { kind: "silence" };

/**
 * An upstream registry on a raw TCP socket, so that it can say what node's HTTP server never
 * would: Content-Lengths that disagree with the body, bodies or headers dripped a byte at a
 * time, resets mid-body, or nothing at all. Paths without a lie are 404s; every request is
 * counted. Each answer closes its connection.
 */
export class LyingUpstream {
  private readonly server: Server;
  private readonly lies = new Map<string, Lie>();
  private readonly sockets = new Set<Socket>();
  private readonly open = new Map<string, number>();
  readonly requests: { method: string; path: string }[] = [];
  /** Body bytes written per path, whatever the client did with them. */
  readonly bytesSent = new Map<string, number>();
  /** Paths whose client hung up (or reset) before the answer was complete. */
  readonly abandoned: string[] = [];
  url = "";
  host = "";

  constructor() {
    this.server = createServer((socket) => this.accept(socket));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.host = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    this.url = `http://${this.host}`;
    return this;
  }

  async stop(): Promise<void> {
    this.disconnectAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Drops every open connection (a crash of the upstream), and goes on listening. */
  disconnectAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** Answers `path` with `lie` from now on. */
  set(path: string, lie: Lie): void {
    this.lies.set(path, lie);
  }

  /** A blob's path and digest in `repository`, for `set`. */
  static blobPath(repository: string, body: Buffer): { path: string; digest: string } {
    const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
    return { path: `/v2/${repository}/blobs/${digest}`, digest };
  }

  count(path: string): number {
    return this.requests.filter((r) => r.path === path).length;
  }

  /** Requests for `path` that have not been answered in full yet. */
  pending(path: string): number {
    return this.open.get(path) ?? 0;
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => {});
    let head = "";
    const onData = (chunk: Buffer) => {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      const [method, target] = head.slice(0, head.indexOf("\r\n")).split(" ");
      const path = (target ?? "/").split("?")[0];
      this.requests.push({ method, path });
      this.open.set(path, (this.open.get(path) ?? 0) + 1);
      void this.answer(socket, method, path).finally(() => this.open.set(path, this.open.get(path)! - 1));
    };
    socket.on("data", onData);
  }

  private async answer(socket: Socket, method: string, path: string): Promise<void> {
    if (path === "/v2/" || path === "/v2") return this.write(socket, path, response(200, { "content-type": "application/json" }, Buffer.from("{}")), true);
    const lie = this.lies.get(path);
    const body = lie && "body" in lie ? lie.body : Buffer.alloc(0);
    const headers = (length: number) => ({ "content-type": "application/octet-stream", "content-length": String(length), "docker-content-digest": `sha256:${createHash("sha256").update(body).digest("hex")}` });
    const head = method === "HEAD";
    switch (lie?.kind) {
      case undefined:
        return this.write(socket, path, response(404, { "content-type": "application/json" }, Buffer.from('{"errors":[{"code":"BLOB_UNKNOWN"}]}')), true);
      case "honest":
        return this.write(socket, path, response(200, headers(body.length), head ? undefined : body), true);
      case "status":
        await sleep(lie.delayMs ?? 0);
        return this.write(socket, path, response(lie.status, { "content-type": "application/json", ...lie.headers }, Buffer.from('{"errors":[{"code":"UNAVAILABLE"}]}')), true);
      case "silence":
        await new Promise((resolve) => socket.once("close", resolve));
        return;
      case "content-length":
        return this.write(socket, path, response(200, headers(lie.declared), head ? undefined : body), !lie.keepOpen);
      case "close-delimited":
        return this.write(socket, path, response(200, { "content-type": "application/octet-stream" }, head ? undefined : body, false), true);
      case "trickle-headers": {
        const bytes = response(200, headers(body.length), head ? undefined : body);
        for (let i = 0; i < bytes.length && !socket.destroyed; i++) {
          await this.write(socket, path, bytes.subarray(i, i + 1), false);
          await sleep(lie.intervalMs);
        }
        return this.finish(socket, path);
      }
      case "trickle-body": {
        await this.write(socket, path, response(200, headers(body.length)), false);
        for (let i = 0; i < body.length && !socket.destroyed; i += lie.bytes) {
          await this.write(socket, path, body.subarray(i, i + lie.bytes), false);
          this.bytesSent.set(path, (this.bytesSent.get(path) ?? 0) + Math.min(lie.bytes, body.length - i));
          await sleep(lie.intervalMs);
        }
        return this.finish(socket, path);
      }
      case "reset":
        await this.write(socket, path, response(200, headers(body.length)), false);
        await this.write(socket, path, body.subarray(0, lie.sendBytes), false);
        socket.resetAndDestroy();
        return;
    }
  }

  private async write(socket: Socket, path: string, bytes: Buffer, end: boolean): Promise<void> {
    if (socket.destroyed) return;
    await new Promise<void>((resolve) => socket.write(bytes, () => resolve()));
    if (end) this.finish(socket, path);
  }

  private finish(socket: Socket, path: string): void {
    if (socket.destroyed) this.abandoned.push(path);
    else socket.end();
  }
}

function response(status: number, headers: Record<string, string>, body?: Buffer, withLength = true): Buffer {
  if (body && withLength && !("content-length" in headers)) headers = { ...headers, "content-length": String(body.length) };
  const lines = [`HTTP/1.1 ${status} ${status === 200 ? "OK" : "Status"}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), "connection: close", "", ""];
  return Buffer.concat([Buffer.from(lines.join("\r\n"), "latin1"), body ?? Buffer.alloc(0)]);
}
