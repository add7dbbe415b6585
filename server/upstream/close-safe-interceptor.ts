import { DecoratorHandler, type Dispatcher } from "undici";

/** How far a reader may fall behind a response that ends with the connection before it is aborted. */
export const MAX_UNREAD_BYTES = 64 * 1024 * 1024;

/**
 * Works around undici#5360 (fixed only in undici 8, which needs Node 22): a slow reader makes
 * undici pause its HTTP parser, and if the upstream closes a connection it did not keep alive
 * (`Connection: close`, or a body only the close delimits) while the parser is paused, undici
 * fails an assertion inside a socket event handler and the whole process dies. For such
 * responses this interceptor never lets the parser pause: the reader's stream buffers what it
 * has not read yet, and a reader more than MAX_UNREAD_BYTES behind gets its request aborted
 * (a failed transfer, retried later) rather than unbounded memory. Kept-alive responses, where
 * a pause is safe, are passed through untouched.
 */
export function closeSafeBodies(maxUnreadBytes = MAX_UNREAD_BYTES): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (options, handler) => dispatch(options, new CloseSafeHandler(handler, maxUnreadBytes));
}

class CloseSafeHandler extends DecoratorHandler {
  private endsWithClose = false;
  /** Bytes handed to a reader that asked for a pause and has not resumed since. */
  private unread = 0;
  private abort: (err?: Error) => void = () => {};

  constructor(
    private readonly handler: Dispatcher.DispatchHandlers,
    private readonly maxUnreadBytes: number,
  ) {
    super(handler);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
    this.handler.onConnect?.(abort);
  }

  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    let length = false;
    let chunked = false;
    let close = false;
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = headers[i].toString("latin1").toLowerCase();
      const value = headers[i + 1].toString("latin1").toLowerCase();
      if (name === "content-length") length = true;
      else if (name === "transfer-encoding") chunked = value.includes("chunked");
      else if (name === "connection") close = value.split(",").some((token) => token.trim() === "close");
    }
    this.endsWithClose = close || (!length && !chunked);
    this.unread = 0;
    const resumeReader = () => {
      this.unread = 0;
      resume();
    };
    return this.handler.onHeaders?.(statusCode, headers, resumeReader, statusText) ?? true;
  }

  onData(chunk: Buffer): boolean {
    const more = this.handler.onData?.(chunk) ?? true;
    if (more || !this.endsWithClose) return more;
    this.unread += chunk.length;
    if (this.unread > this.maxUnreadBytes) {
      this.abort(new Error(`the reader fell more than ${this.maxUnreadBytes} bytes behind a response that ends with its connection`));
    }
    return true;
  }
}
