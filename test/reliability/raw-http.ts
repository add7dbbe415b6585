import { connect } from "node:net";

/** A raw response: whatever the server wrote before it closed the connection. */
export interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

export interface RawRequest {
  method: string;
  /** Sent byte for byte (latin1), unnormalised: `..`, `%2e`, backslashes and control bytes included. */
  target: string;
  headers?: [string, string][];
  body?: Buffer;
}

/**
 * Sends one HTTP/1.1 request exactly as given on a fresh connection (`Connection: close`) and
 * reads the answer until the server closes: for inputs a well-behaved client library would
 * refuse or normalise. Rejects only when the connection fails or no status line comes back.
 */
export function rawRequest(port: number, request: RawRequest, timeoutMs = 30_000): Promise<RawAnswer> {
  const body = request.body ?? Buffer.alloc(0);
  const lines = [`${request.method} ${request.target} HTTP/1.1`, "Host: 127.0.0.1", ...(request.headers ?? []).map(([name, value]) => `${name}: ${value}`)];
  if (!(request.headers ?? []).some(([name]) => name.toLowerCase() === "content-length")) lines.push(`Content-Length: ${body.length}`);
  lines.push("Connection: close", "", "");
  return rawExchange(port, Buffer.concat([Buffer.from(lines.join("\r\n"), "latin1"), body]), `${request.method} ${request.target.slice(0, 80)}`, timeoutMs);
}

/**
 * Writes `bytes` as they are on a fresh connection (a request line no client would send) and
 * reads the answer; the write side is closed after `bytes`, so a server waiting for more
 * input sees the end of it.
 */
export function rawBytes(port: number, bytes: Buffer, timeoutMs = 30_000): Promise<RawAnswer> {
  return rawExchange(port, bytes, JSON.stringify(bytes.subarray(0, 40).toString("latin1")), timeoutMs, true);
}

function rawExchange(port: number, bytes: Buffer, what: string, timeoutMs: number, endAfterWrite = false): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`${what}: no answer in ${timeoutMs} ms`)));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", (err: NodeJS.ErrnoException) => {
      // A server may answer and close before it read the whole request (a refused body).
      if (err.code === "ECONNRESET" || err.code === "EPIPE") finish();
      else reject(err);
    });
    socket.on("close", finish);
    let done = false;
    function finish(): void {
      if (done) return;
      done = true;
      const answer = parse(Buffer.concat(chunks));
      if (answer) resolve(answer);
      else reject(new Error(`${what}: no HTTP answer`));
    }
    if (endAfterWrite) socket.end(bytes);
    else socket.write(bytes);
  });
}

function parse(bytes: Buffer): RawAnswer | undefined {
  const end = bytes.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine, ...lines] = bytes.subarray(0, end).toString("latin1").split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!status) return undefined;
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  let body = bytes.subarray(end + 4);
  const length = headers.get("content-length");
  if (length !== undefined) body = body.subarray(0, Number(length));
  return { status: Number(status[1]), headers, body };
}
