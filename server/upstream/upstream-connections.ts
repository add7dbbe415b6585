import { Agent, DecoratorHandler, type Dispatcher } from "undici";
import type { UpstreamMeter } from "../metrics/registry-metrics.js";
import { closeSafeBodies } from "./close-safe-interceptor.js";
import { DestinationPolicy } from "./destination-policy.js";
import type { UpstreamEndpoint } from "./upstream-endpoint.js";

/**
 * The connections to one upstream, shared by every view of it (tenants' credentials): a pool
 * for its own origin, and a guarded one for wherever it sends berth (CDNs, token realms), whose
 * connector connects only where the destination policy admits. Neither follows redirects
 * itself: UpstreamClient does, hop by hop, so each hop is checked.
 */
export class UpstreamConnections {
  readonly policy: DestinationPolicy;
  private readonly own: Agent;
  private readonly elsewhere: Agent;
  private readonly ownDispatcher: Dispatcher;
  private readonly elsewhereDispatcher: Dispatcher;

  constructor(endpoint: UpstreamEndpoint, meter: UpstreamMeter) {
    this.policy = new DestinationPolicy(endpoint.url);
    const pool = { headersTimeout: endpoint.readTimeoutMs, bodyTimeout: endpoint.readTimeoutMs, keepAliveTimeout: 30_000, connections: 64 };
    this.own = new Agent({ ...pool, connect: { timeout: endpoint.connectTimeoutMs } });
    this.elsewhere = new Agent({ ...pool, connect: this.policy.connector({ timeout: endpoint.connectTimeoutMs }) });
    this.ownDispatcher = this.own.compose(closeSafeBodies(), metered(meter));
    this.elsewhereDispatcher = this.elsewhere.compose(closeSafeBodies(), metered(meter));
  }

  /** The pool for `url`: the upstream's own, or the guarded one. */
  dispatcherFor(url: URL): Dispatcher {
    return this.policy.isOwnOrigin(url) ? this.ownDispatcher : this.elsewhereDispatcher;
  }

  async close(): Promise<void> {
    await Promise.all([this.own.close(), this.elsewhere.close()]);
  }
}

/** Counts every exchange on the meter: status, time to headers, body bytes (each hop of a redirect). */
function metered(meter: UpstreamMeter): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (options, handler) => dispatch(options, new MeteredHandler(handler, meter));
}

class MeteredHandler extends DecoratorHandler {
  private readonly started = performance.now();
  private answered = false;

  constructor(
    private readonly handler: Dispatcher.DispatchHandlers,
    private readonly meter: UpstreamMeter,
  ) {
    super(handler);
  }

  onHeaders(statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    this.answered = true;
    this.meter.request(statusCode, (performance.now() - this.started) / 1000);
    return this.handler.onHeaders?.(statusCode, headers, resume, statusText) ?? true;
  }

  onData(chunk: Buffer): boolean {
    this.meter.received(chunk.length);
    return this.handler.onData?.(chunk) ?? true;
  }

  onError(err: Error): void {
    if (!this.answered) this.meter.request(0, (performance.now() - this.started) / 1000);
    this.handler.onError?.(err);
  }
}
