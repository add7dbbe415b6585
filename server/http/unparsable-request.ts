import { STATUS_CODES, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { API_VERSION_HEADER } from "./responses.js";

/** What Node's HTTP parser and server report, by the status the request gets. */
const STATUS_BY_CODE: Record<string, number> = {
  HPE_HEADER_OVERFLOW: 431,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
  ERR_HTTP_REQUEST_TIMEOUT: 408,
};

/**
 * Answers a request Node's HTTP parser rejected before any route saw it (headers over the
 * size limit, malformed framing) with an OCI error document, as every other refusal is
 * answered, and closes the connection: after a framing error nothing more on it can be read.
 */
export function answerUnparsableRequest(err: Error & { code?: string }, socket: Duplex): void {
  // A response already under way on this connection cannot be followed by another.
  const inProgress = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage;
  if (err.code === "ECONNRESET" || !socket.writable || inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  const status = STATUS_BY_CODE[err.code ?? ""] ?? 400;
  const message = status === 431 ? "request header fields too large" : `malformed HTTP request: ${err.message}`;
  const body = JSON.stringify({ errors: [{ code: "UNSUPPORTED", message }] });
  socket.end(
    [
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}`,
      "Content-Type: application/json",
      `Content-Length: ${Buffer.byteLength(body)}`,
      `${API_VERSION_HEADER}: registry/2.0`,
      "Connection: close",
      "",
      body,
    ].join("\r\n"),
  );
}
