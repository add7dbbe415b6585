import type { Readable } from "node:stream";
import { Agent, request, type Dispatcher } from "undici";
import type { Logger } from "../log.js";
import type { Digest } from "../reference/digest.js";
import type { ByteRange } from "../storage/driver.js";
import { closeSafeBodies } from "../upstream/close-safe-interceptor.js";
import { UpstreamError, type UpstreamFailure } from "../upstream/upstream-error.js";
import type { FillState } from "./blob-fill.js";

/** Longest wait to connect to another replica: one that does not answer by then is taken for gone. */
const CONNECT_TIMEOUT_MS = 3_000;
/**
 * Longest wait for another replica's answer, and between two chunks of it: longer than that
 * replica waits for its upstream (connect and read timeouts), so only a replica that stopped
 * answering runs into it.
 */
const ANSWER_TIMEOUT_MS = 90_000;

/** Where a replica serves the fills it leads on its internal port. */
export const FILLS_PATH = "/internal/fills";

/** `/internal/fills/<source>/<digest>`: the fill's bytes (a `Range` of them); `.../state`: its size and state, as JSON. */
export function fillPath(digest: Digest, source: string): string {
  return `${FILLS_PATH}/${encodeURIComponent(source)}/${digest}`;
}

/** What a replica answers about a fill it serves, once the fill's size is known. */
export interface PeerFillState {
  size: number;
  state: FillState;
}

/** How a replica tells the others that the fill it led failed at the upstream (a 502 answer's body). */
export interface FillFailure {
  failure: UpstreamFailure;
  message: string;
  retryAfterMs?: number;
  reason?: string;
}

export function fillFailure(err: UpstreamError): FillFailure {
  const { retryAfterMs, reason } = err.options;
  return { failure: err.failure, message: err.message, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}), ...(reason !== undefined ? { reason } : {}) };
}

/**
 * The replica asked does not serve this fill now: unreachable, restarted, refusing this
 * replica's secret, done with the fill, or it cut the transfer.
 */
export class PeerGoneError extends Error {}

/**
 * The client of the other replicas' internal ports, for the fills they lead: asks one for a
 * fill's size and state, and reads a fill's bytes from it. A fill that failed at its upstream is
 * thrown as that UpstreamError; anything else that keeps a replica from serving is a PeerGoneError.
 */
export class FillPeers {
  private readonly agent = new Agent({ connect: { timeout: CONNECT_TIMEOUT_MS }, headersTimeout: ANSWER_TIMEOUT_MS, bodyTimeout: ANSWER_TIMEOUT_MS, keepAliveTimeout: 10_000 });
  private readonly dispatcher: Dispatcher = this.agent.compose(closeSafeBodies());
  private refusedBy = new Set<string>();

  constructor(
    private readonly secret: string,
    private readonly log: Logger,
  ) {}

  /** The fill's size and state at the replica at `url`, once that replica knows the size. */
  async state(url: string, digest: Digest, source: string, signal?: AbortSignal): Promise<PeerFillState> {
    const answer = await this.ask(url, `${fillPath(digest, source)}/state`, {}, signal);
    if (answer.statusCode !== 200) throw await this.failure(url, answer);
    const body = (await answer.body.json()) as Partial<PeerFillState>;
    if (typeof body.size !== "number" || typeof body.state !== "string") throw new PeerGoneError(`${url} described the fill of ${digest} in a form this replica does not know`);
    return { size: body.size, state: body.state };
  }

  /** The fill's bytes in `range` (the whole blob when absent), as the replica at `url` delivers them. */
  async read(url: string, digest: Digest, source: string, range: ByteRange | undefined, signal?: AbortSignal): Promise<Readable> {
    const answer = await this.ask(url, fillPath(digest, source), range ? { range: `bytes=${range.start}-${range.end}` } : {}, signal);
    if (answer.statusCode !== (range ? 206 : 200)) throw await this.failure(url, answer);
    return answer.body;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private async ask(url: string, path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
    try {
      return await request(new URL(path, url), { dispatcher: this.dispatcher, headers: { ...headers, authorization: `Bearer ${this.secret}` }, signal });
    } catch (err) {
      throw new PeerGoneError(`${url} did not answer: ${(err as Error).message}`, { cause: err });
    }
  }

  private async failure(url: string, answer: Dispatcher.ResponseData): Promise<Error> {
    const body = await answer.body.text().catch(() => "");
    if (answer.statusCode === 502) {
      try {
        const { failure, message, retryAfterMs, reason } = JSON.parse(body) as FillFailure;
        return new UpstreamError(failure, message, { ...(retryAfterMs !== undefined ? { retryAfterMs } : {}), ...(reason !== undefined ? { reason } : {}) });
      } catch {
        // not a fill's failure: the replica is not serving it
      }
    }
    if ((answer.statusCode === 401 || answer.statusCode === 403) && !this.refusedBy.has(url)) {
      this.refusedBy.add(url);
      this.log.error({ replica: url, status: answer.statusCode }, "another replica refused this one's secret: coordination.internal.secretFile must hold the same secret on every replica");
    }
    return new PeerGoneError(`${url} answered ${answer.statusCode} for a fill`);
  }
}
