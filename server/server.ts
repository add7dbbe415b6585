import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { setTimeout as delay } from "node:timers/promises";
import { Server as NetServer, type AddressInfo } from "node:net";
import type { BerthConfig } from "../config/schema.js";
import { AdmissionListener } from "./admission/admission-listener.js";
import { setUpAdmission } from "./admission/setup.js";
import { setUpAuth } from "./auth/setup.js";
import { createAdminRoutes } from "./http/admin-routes.js";
import { createApp } from "./http/app.js";
import { cutStalledClients, serverTimeoutOptions } from "./http/client-timeouts.js";
import { createMetricsRoute } from "./http/metrics-route.js";
import { createStatusPage } from "./http/status-page.js";
import { createTokenRoutes } from "./http/token-routes.js";
import { answerUnparsableRequest } from "./http/unparsable-request.js";
import type { Logger } from "./log.js";
import { BerthMetrics } from "./metrics/berth-metrics.js";
import NodeCache from "node-cache";
import type { ArchFallbackConfig } from "../config/upstream-schema.js";
import { BlobFills } from "./registry/blob-fill.js";
import { ContentCollector } from "./registry/content-collector.js";
import { HostedRegistry } from "./registry/hosted-registry.js";
import { parsePlatform } from "./registry/platform.js";
import { PlatformRegistry } from "./registry/platform-registry.js";
import { MirrorVisibility } from "./registry/mirror-visibility.js";
import { ProxyRepository, type Mirror, type Requester } from "./registry/proxy.js";
import type { RequestedBy } from "./registry/registry.js";
import { RecentManifests } from "./registry/recent-manifests.js";
import { RoutingRegistry } from "./registry/routing-registry.js";
import { RepositoryMetadata } from "./storage/repository-metadata.js";
import { openFilesystemStorage, type Storage } from "./storage/storage.js";
import { UpstreamBackoff } from "./upstream/backoff.js";
import { Keyring } from "./upstream/credentials/keyring.js";
import { KeyringUnion } from "./upstream/credentials/keyring-union.js";
import { UpstreamClient } from "./upstream/upstream-client.js";

/** A running berth: its HTTP server, storage, and how to stop it. */
export interface Berth {
  server: Server;
  storage: Storage;
  url: string;
  collector: ContentCollector;
  /** Upstream blob fetches in flight; a client's download can end before its blob is stored. */
  fills: BlobFills;
  /** `https://HOST:PORT` of the admission webhook's own listener, when it has one. */
  admissionUrl?: string;
  /**
   * Graceful shutdown: /readyz turns unready and new connections are refused at once;
   * requests in flight get `graceMs` (default `shutdown.gracePeriod`) to finish, then are cut.
   */
  close(graceMs?: number): Promise<void>;
}

export async function startBerth(config: BerthConfig, log: Logger): Promise<Berth> {
  const storage = await openFilesystemStorage(config.storage.root);
  const auth = await setUpAuth(config);
  const fills = new BlobFills(storage.driver, storage.blobs);
  const backoff = new UpstreamBackoff();
  const metrics = new BerthMetrics({ fills, backoff, upstreams: config.upstreams });
  const mirrors = await createMirrors(config, storage, fills, backoff, metrics, log);
  const defaultMirror = mirrors.find((m) => m.upstream.host === config.defaultUpstream || m.upstream.prefix === config.defaultUpstream);
  const routing = new RoutingRegistry(new HostedRegistry(storage), storage.metadata, mirrors, defaultMirror);
  const registry = new PlatformRegistry(routing, {
    defaultPlatform: parsePlatform(config.platform)!,
    fallbackArchitectures: (repository) => probed(repository instanceof ProxyRepository ? repository.upstream.archFallback : config.hosted.archFallback),
    blobs: storage.blobs,
  });
  await storage.blobs.usage.load();
  const collector = new ContentCollector(
    storage,
    mirrors.map((m) => m.cache),
    { maxCacheBytes: config.cache.maxSize, minAgeMs: config.cache.minAge, uploadMaxAgeMs: config.storage.uploadMaxAge },
    log.child({ component: "collector" }),
    metrics,
  );
  const collecting =
    config.cache.collectInterval > 0
      ? setInterval(() => collector.run().catch((err: unknown) => log.error({ err }, "content collection failed")), config.cache.collectInterval).unref()
      : undefined;
  let closing = false;
  const admission = setUpAdmission(config, registry, log);
  const app = createApp({
    registry,
    access: auth.access,
    ...(auth.tokenService ? { tokenRoutes: createTokenRoutes(auth.tokenService, log, metrics) } : {}),
    ...(admission && !admission.listener ? { admissionRoutes: admission.routes } : {}),
    adminRoutes: createAdminRoutes({ collector }),
    requestMetrics: metrics,
    metricsRoute: createMetricsRoute(metrics),
    statusPage: createStatusPage({ status: () => metrics.status(), loopbackOnly: config.auth.mode !== "none" }),
    storesBlob: async (digest) => (await storage.blobs.size(digest)) !== undefined,
    log,
    ready: async () => {
      if (closing) return false;
      await storage.driver.probeWritable();
      return true;
    },
  });
  const server = createServer(serverTimeoutOptions(config.http), app);
  cutStalledClients(server, config.http.idleTimeout);
  server.on("clientError", answerUnparsableRequest);
  const inFlight = new Set<ServerResponse>();
  server.on("request", (_req: IncomingMessage, res: ServerResponse) => {
    inFlight.add(res);
    if (closing) res.setHeader("Connection", "close");
    res.once("close", () => inFlight.delete(res));
  });
  const [host, port] = splitHostPort(config.listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  const admissionListener = admission?.listener
    ? await AdmissionListener.start(admission.routes, admission.listener, log).catch((err: unknown) => {
        server.close();
        throw err;
      })
    : undefined;
  return {
    server,
    storage,
    url,
    collector,
    fills,
    ...(admissionListener ? { admissionUrl: admissionListener.url } : {}),
    close: async (graceMs = config.shutdown.gracePeriod) => {
      closing = true;
      const admissionClosed = admissionListener?.close(graceMs);
      if (collecting) clearInterval(collecting);
      // net.Server's close stops accepting but, unlike http.Server's, keeps idle kept-alive
      // connections: a probe on one still sees /readyz 503, answered with Connection: close.
      const stopped = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
      const deadline = Date.now() + graceMs;
      while (inFlight.size > 0 && Date.now() < deadline) await delay(Math.min(100, deadline - Date.now()));
      if (inFlight.size > 0) log.warn({ requests: inFlight.size }, "grace period over: aborting requests in flight");
      server.closeAllConnections();
      await stopped;
      await storage.uploads.settled(); // chunks just cut keep what arrived before the process exits
      fills.abortAll();
      await fills.settled();
      await Promise.all(mirrors.map((m) => m.client.close()));
      for (const mirror of mirrors) mirror.tagLists.close();
      await admissionClosed;
      await storage.blobs.usage.save().catch((err: unknown) => log.warn({ err }, "could not save blob access times"));
    },
  };
}

async function createMirrors(config: BerthConfig, storage: Storage, fills: BlobFills, backoff: UpstreamBackoff, metrics: BerthMetrics, log: Logger): Promise<Mirror[]> {
  const keyring = async (files: readonly string[]) => {
    const loaded = new Keyring(files, { onProblem: (problem) => log.warn({ problem: problem.message }, "credential source skipped") });
    await loaded.load();
    return loaded;
  };
  const shared = await keyring(config.credentials);
  const keyrings = await Promise.all(config.upstreams.map((upstream) => keyring(upstream.credentials)));
  const tenantKeyrings = new Map(await Promise.all(config.tenants.map(async (t) => [t.name, await keyring(t.credentials)] as const)));
  return config.upstreams.map((upstream, i) => {
    const client = new UpstreamClient(
      { host: upstream.host, url: upstream.url, connectTimeoutMs: upstream.connectTimeout, readTimeoutMs: upstream.readTimeout },
      new KeyringUnion([keyrings[i], shared]),
      metrics.upstream(upstream.host),
    );
    const isolated = config.auth.mode !== "none" && upstream.tenantIsolation;
    return {
      upstream,
      client,
      storage,
      cache: new RepositoryMetadata(storage.driver, `mirrors/${upstream.prefix}`),
      recentManifests: new RecentManifests(),
      fills,
      backoff,
      tagLists: new NodeCache({ stdTTL: 30, useClones: false, checkperiod: 0 }),
      visibility: new MirrorVisibility(storage.driver, `mirrors/${upstream.prefix}`, upstream.accessConfirmationTTL),
      requesterFor: (who?: RequestedBy): Requester => {
        if (!isolated || !who) return { client };
        const viewer = who.tenant ? `tenant:${who.tenant}` : `subject:${who.subject}`;
        const own = who.tenant ? tenantKeyrings.get(who.tenant) : undefined;
        return { viewer, client: client.as(viewer, () => new KeyringUnion(own ? [own, keyrings[i], shared] : [keyrings[i], shared])) };
      },
      meter: metrics.upstream(upstream.host),
      log: log.child({ upstream: upstream.host }),
    };
  });
}

function probed(fallback: ArchFallbackConfig): readonly string[] {
  return fallback.enabled ? fallback.architectures : [];
}

export function splitHostPort(listen: string): [string, number] {
  const index = listen.lastIndexOf(":");
  const host = listen.slice(0, index).replace(/^\[(.*)\]$/, "$1");
  return [host, Number(listen.slice(index + 1))];
}
