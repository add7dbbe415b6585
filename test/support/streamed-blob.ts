import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/** What one client received: status, headers, the sha256 and length of the body, or why the transfer broke. */
export interface StreamedBody {
  status: number;
  /** Empty when no answer came. */
  headers: Headers;
  /** "" when the transfer broke. */
  digest: string;
  length: number;
  error?: Error;
}

/** GETs a blob, streaming its body into a hash (never held in memory) and reporting each chunk's arrival. */
export async function streamBlob(url: string, headers: Record<string, string> = {}, received: (length: number) => void = () => {}): Promise<StreamedBody> {
  const hash = createHash("sha256");
  let length = 0;
  let status = 0;
  let answered = new Headers();
  try {
    const response = await fetch(url, { headers });
    status = response.status;
    answered = response.headers;
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      length += chunk.length;
      received(length);
    }
  } catch (err) {
    return { status, headers: answered, digest: "", length, error: err as Error };
  }
  return { status, headers: answered, digest: `sha256:${hash.digest("hex")}`, length };
}

/** sha256 of a file's bytes from `start` to `end` (inclusive; default its end), streamed. */
export async function sha256OfFileRange(path: string, start: number, end?: number): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { start, end })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}
