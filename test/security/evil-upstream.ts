import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { listenOnLoopback, type LoopbackServer } from "../support/loopback-server.js";

const sha256 = (bytes: Buffer) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

interface Answer {
  status: number;
  headers: Record<string, string | number>;
  body: Buffer;
}

/**
 * An anonymous upstream that lies on purpose, which a real registry cannot be made to do: it
 * serves manifests naming digests it does not hold, answers a blob HEAD for any digest it
 * claims, and answers whatever it is told to (HTML, redirects, huge documents). It logs every
 * request, so a test can tell whether berth asked it at all.
 */
export class EvilUpstream {
  readonly requests: { method: string; path: string }[] = [];
  private readonly answers = new Map<string, (method: string) => Answer>();

  private constructor(private readonly listener: LoopbackServer) {}

  static async start(): Promise<EvilUpstream> {
    let upstream: EvilUpstream | undefined;
    const listener = await listenOnLoopback((req, res) => upstream!.handle(req, res));
    upstream = new EvilUpstream(listener);
    return upstream;
  }

  get url(): string {
    return this.listener.url;
  }

  /** `127.0.0.1:PORT`, what containerd sends as `?ns=`. */
  get host(): string {
    return new URL(this.listener.url).host;
  }

  stop(): Promise<void> {
    return this.listener.stop();
  }

  /** Serves a manifest by tag and by digest; returns its digest. */
  manifest(repository: string, tag: string, document: object, mediaType = "application/vnd.oci.image.manifest.v1+json"): string {
    const bytes = Buffer.from(JSON.stringify(document));
    const digest = sha256(bytes);
    const answer = () => ({ status: 200, headers: { "content-type": mediaType, "docker-content-digest": digest, "content-length": bytes.length }, body: bytes });
    this.answers.set(`/v2/${repository}/manifests/${tag}`, answer);
    this.answers.set(`/v2/${repository}/manifests/${digest}`, answer);
    return digest;
  }

  /** Says it holds a blob it does not: a HEAD answers 200 with `size`, a GET 404. */
  claim(repository: string, digest: string, size: number): void {
    this.answers.set(`/v2/${repository}/blobs/${digest}`, (method) =>
      method === "HEAD"
        ? { status: 200, headers: { "content-length": size, "docker-content-digest": digest, "content-type": "application/octet-stream" }, body: Buffer.alloc(0) }
        : notFound("BLOB_UNKNOWN"),
    );
  }

  /** Answers `path` (GET and HEAD) with exactly this. */
  answer(path: string, status: number, headers: Record<string, string | number>, body: Buffer | string): void {
    const bytes = Buffer.from(body);
    this.answers.set(path, () => ({ status, headers: { "content-length": bytes.length, ...headers }, body: bytes }));
  }

  /** How many requests asked for `path` (any method, query ignored). */
  asked(path: string): number {
    return this.requests.filter((r) => r.path === path).length;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? "GET";
    const path = (req.url ?? "/").split("?")[0];
    this.requests.push({ method, path });
    req.resume();
    const answer = path === "/v2/" ? { status: 200, headers: { "content-type": "application/json" }, body: Buffer.from("{}") } : (this.answers.get(path)?.(method) ?? notFound("MANIFEST_UNKNOWN"));
    res.writeHead(answer.status, answer.headers);
    res.end(method === "HEAD" ? undefined : answer.body);
  }
}

function notFound(code: string): Answer {
  const body = Buffer.from(JSON.stringify({ errors: [{ code, message: "unknown" }] }));
  return { status: 404, headers: { "content-type": "application/json", "content-length": body.length }, body };
}
