import { open, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { CreateBucketCommand } from "@aws-sdk/client-s3";
import { runCommand } from "../test/support/command.js";
import { rawS3Client, type S3Endpoint } from "../test/support/swift-s3.js";

/** test/setup/swift-s3.sh, from dist/bench/. */
const SWIFT = resolve(__dirname, "../../test/setup/swift-s3.sh");

/** What one storage client asked of S3 over a stretch of Swift's access log. */
export interface S3Usage {
  /** S3 requests the client sent. */
  requests: number;
  byOperation: Map<string, number>;
  /** Seconds Swift took to answer them, added up, by operation. */
  secondsByOperation: Map<string, number>;
  /** Bytes in request bodies (PutObject, UploadPart...). */
  sent: number;
  /** Bytes in response bodies (GetObject, listings, XML answers). */
  received: number;
  /** Bytes Swift read to copy on its side (CopyObject, UploadPartCopy). */
  copied: number;
}

/** One line of Swift's proxy access log (proxy_logging's default format). */
interface LogLine {
  client: boolean;
  method: string;
  path: string;
  query: URLSearchParams;
  status: number;
  sent: number;
  received: number;
  transaction: string;
  seconds: number;
  source: string;
}

/**
 * OpenStack Swift's s3api on loopback (test/setup/swift-s3.sh) with one bucket, for a scenario;
 * its proxy's access log counts the S3 requests and bytes of any client, berth or not, alike.
 */
export class BenchSwift {
  private constructor(
    private readonly dir: string,
    readonly endpoint: S3Endpoint,
    readonly bucket: string,
  ) {}

  static async start(dir: string, bucket: string): Promise<BenchSwift> {
    const { stdout } = await runCommand("bash", [SWIFT, "start", dir, "0", bucket], { timeoutMs: 600_000 });
    const env = Object.fromEntries(stdout.trim().split("\n").map((line) => line.split(/=(.*)/s, 2) as [string, string]));
    const credentialsFile = join(dir, "s3-credentials.yaml");
    await writeFile(credentialsFile, `accessKeyId: "${env.S3_ACCESS_KEY_ID}"\nsecretAccessKey: "${env.S3_SECRET_ACCESS_KEY}"\n`, { mode: 0o600 });
    return new BenchSwift(dir, { endpoint: env.S3_ENDPOINT, accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY, region: env.S3_REGION, credentialsFile }, bucket);
  }

  /** berth's `storage` section on this bucket, under `prefix`. */
  storage(prefix = ""): Record<string, unknown> {
    return { driver: "s3", s3: { bucket: this.bucket, prefix, endpoint: this.endpoint.endpoint, forcePathStyle: true, credentials: { source: "file", file: this.endpoint.credentialsFile } } };
  }

  /** Another bucket on the same Swift. */
  async createBucket(name: string): Promise<void> {
    const client = rawS3Client(this.endpoint);
    try {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    } finally {
      client.destroy();
    }
  }

  async close(): Promise<void> {
    await runCommand("bash", [SWIFT, "stop", this.dir]);
  }

  /** Where the access log ends now: pass it to `usage` to count what happens after. */
  async mark(): Promise<number> {
    await this.settle();
    return (await stat(this.logPath)).size;
  }

  /**
   * The S3 requests made on `bucket` since `mark`, as Swift logged them; keys matching
   * `ignore` (a readiness probe's) are left out.
   */
  async usage(since: number, bucket: string, ignore?: RegExp): Promise<S3Usage> {
    await this.settle();
    const handle = await open(this.logPath, "r");
    let text: string;
    try {
      const { size } = await handle.stat();
      const buffer = Buffer.alloc(size - since);
      await handle.read(buffer, 0, buffer.length, since);
      text = buffer.toString("utf8");
    } finally {
      await handle.close();
    }
    const lines = text.split("\n").flatMap((line) => parseLine(line) ?? []);
    const byTransaction = new Map<string, LogLine[]>();
    for (const line of lines) byTransaction.set(line.transaction, [...(byTransaction.get(line.transaction) ?? []), line]);
    const usage: S3Usage = { requests: 0, byOperation: new Map(), secondsByOperation: new Map(), sent: 0, received: 0, copied: 0 };
    for (const line of lines) {
      if (!line.client || !(line.path === `/${bucket}` || line.path.startsWith(`/${bucket}/`))) continue;
      if (ignore?.test(line.path.slice(bucket.length + 2))) continue;
      const subrequests = (byTransaction.get(line.transaction) ?? []).filter((l) => !l.client);
      // A copy reads its source through the copy middleware ("SSC"); a multipart source's
      // bytes are read as its segments ("SLO"), the SSC read being only its manifest.
      const copySource = subrequests.filter((l) => l.source === "SSC" && l.method === "GET");
      const segments = subrequests.filter((l) => l.source === "SLO" && l.method === "GET").reduce((sum, l) => sum + l.sent, 0);
      const copied = copySource.length === 0 ? 0 : segments > 0 ? segments : copySource.reduce((sum, l) => sum + l.sent, 0);
      const operation = operationOf(line, copySource.length > 0);
      usage.requests++;
      usage.byOperation.set(operation, (usage.byOperation.get(operation) ?? 0) + 1);
      usage.secondsByOperation.set(operation, (usage.secondsByOperation.get(operation) ?? 0) + line.seconds);
      usage.sent += line.received;
      usage.received += line.sent;
      usage.copied += copied;
    }
    return usage;
  }

  private get logPath(): string {
    return join(this.dir, "log", "proxy.log");
  }

  /** Swift writes a request's line once it answered; give the last one time to land. */
  private async settle(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

function parseLine(text: string): LogLine | undefined {
  const fields = text.replace(/^[\w-]+: /, "").split(" ");
  if (fields.length < 17 || !/^(GET|HEAD|PUT|POST|DELETE)$/.test(fields[3])) return undefined;
  let target: string;
  try {
    target = decodeURIComponent(fields[4]);
  } catch {
    return undefined;
  }
  const [path, query = ""] = target.split(/\?(.*)/s, 2);
  const number = (field: string) => (field === "-" ? 0 : Number(field));
  return {
    client: fields[0] !== "-",
    method: fields[3],
    path,
    query: new URLSearchParams(query),
    status: Number(fields[6]),
    received: number(fields[10]),
    sent: number(fields[11]),
    transaction: fields[13],
    seconds: Number(fields[15]),
    source: fields[16],
  };
}

/** The S3 operation a client request was, from its method, path and query (any SDK). */
function operationOf(line: LogLine, copies: boolean): string {
  const q = line.query;
  const onBucket = line.path.split("/").filter(Boolean).length === 1;
  switch (line.method) {
    case "HEAD":
      return onBucket ? "HeadBucket" : "HeadObject";
    case "GET":
      if (q.has("uploadId")) return "ListParts";
      if (q.has("uploads")) return "ListMultipartUploads";
      return onBucket ? "ListObjects" : "GetObject";
    case "POST":
      if (q.has("uploadId")) return "CompleteMultipartUpload";
      if (q.has("delete")) return "DeleteObjects";
      // Swift logs aws-sdk-go's bare `?uploads=` without its query.
      return onBucket ? "POST" : "CreateMultipartUpload";
    case "PUT":
      if (q.has("partNumber")) return copies ? "UploadPartCopy" : "UploadPart";
      return copies ? "CopyObject" : "PutObject";
    case "DELETE":
      return q.has("uploadId") ? "AbortMultipartUpload" : "DeleteObject";
    default:
      return line.method;
  }
}

