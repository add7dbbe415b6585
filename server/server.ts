import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Server as NetServer, type AddressInfo } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import type { CoordinationConfig } from "../config/coordination-schema.js";
import type { BerthConfig } from "../config/schema.js";
import type { ArchFallbackConfig } from "../config/upstream-schema.js";
import { AdmissionListener } from "./admission/admission-listener.js";
import { setUpAdmission } from "./admission/setup.js";
import { BucketKeys } from "./auth/bucket-keys.js";
import { setUpAuth } from "./auth/setup.js";
import { ClusterUploadLocks } from "./coordination/cluster-upload-locks.js";
import { openCoordination, type Coordination } from "./coordination/coordination.js";
import { SharedCollectionGuard } from "./coordination/shared-collection-guard.js";
import { SharedUpstreamBackoff } from "./coordination/shared-upstream-backoff.js";
import { createAdminRoutes } from "./http/admin-routes.js";
import { createApp } from "./http/app.js";
import { cutStalledClients, serverTimeoutOptions } from "./http/client-timeouts.js";
import { InternalListener } from "./http/internal-listener.js";
import { listenOn } from "./http/listen.js";
import { createMetricsRoute } from "./http/metrics-route.js";
import { createStatusPage } from "./http/status-page.js";
import { createTokenRoutes } from "./http/token-routes.js";
import { answerUnparsableRequest } from "./http/unparsable-request.js";
import type { Logger } from "./log.js";
import { BerthMetrics } from "./metrics/berth-metrics.js";
import type { CoordinationStatus } from "./metrics/coordination-metrics.js";
import { registerS3Metrics } from "./metrics/s3-metrics.js";
import { BlobFills, type Fills } from "./registry/blob-fill.js";
import { ClusterFills } from "./registry/cluster-fills.js";
import { ProcessLookups, type ClusterLookups } from "./registry/cluster-lookups.js";
import { ContentCollector } from "./registry/content-collector.js";
import { DeliveredBlobs } from "./registry/delivered-blobs.js";
import { HostedRegistry } from "./registry/hosted-registry.js";
import { MirrorVisibility } from "./registry/mirror-visibility.js";
import { PlatformRegistry } from "./registry/platform-registry.js";
import { parsePlatform } from "./registry/platform.js";
import { ProxyRepository, type Mirror, type Requester } from "./registry/proxy.js";
import { RecentManifests } from "./registry/recent-manifests.js";
import type { RequestedBy } from "./registry/registry.js";
import { RoutingRegistry } from "./registry/routing-registry.js";
import { SharedLookups } from "./registry/shared-lookups.js";
import { SharedTagListCache } from "./registry/shared-tag-list-cache.js";
import { LocalTagListCache, type TagListCache } from "./registry/tag-list-cache.js";
import { openStorage } from "./storage/open-storage.js";
import { RepositoryMetadata } from "./storage/repository-metadata.js";
import { LocalObjectIndex } from "./storage/s3/object-index.js";
import { s3MetricSources } from "./storage/s3/s3-storage.js";
import { SharedObjectIndex } from "./storage/s3/shared-object-index.js";
import { SavedSessionHashes } from "./storage/session-hashes.js";
import type { Storage, StorageSharing } from "./storage/storage.js";
import { LocalUpstreamBackoff, type UpstreamBackoff } from "./upstream/backoff.js";
import { KeyringUnion } from "./upstream/credentials/keyring-union.js";
import { Keyring } from "./upstream/credentials/keyring.js";
import { ParentTier } from "./upstream/parent-tier.js";
import { UpstreamClient } from "./upstream/upstream-client.js";

/** A running berth: its HTTP server, storage, and how to stop it. */
export interface Berth {
  server: Server;
  storage: Storage;
  url: string;
  collector: ContentCollector;
  /** Upstream blob fetches in flight; a client's download can end before its blob is stored. */
  fills: Fills;
  /** `https://HOST:PORT` of the admission webhook's own listener, when it has one. */
  admissionUrl?: string;
  /** What this replica coordinates with the others through, with `coordination` configured. */
  coordination?: Coordination;
  /**
   * Graceful shutdown: /readyz turns unready and new connections are refused at once;
   * requests in flight get `graceMs` (default `shutdown.gracePeriod`) to finish, then are cut.
   */
  close(graceMs?: number): Promise<void>;
}

export async function startBerth(config: BerthConfig, log: Logger): Promise<Berth> {
  const opened = await openReplicaStorage(config, log);
  const { storage, coordination } = opened;
  const backoff = coordination ? new SharedUpstreamBackoff(coordination.redis, coordination.channel("upstream-backoff"), coordination.replicaId, coordination.fallbacks) : new LocalUpstreamBackoff();
  // Behind a parent, the status page shows where each upstream is fetched from: the parent.
  const reached = config.upstreams.map((upstream) => ({ host: upstream.host, url: config.cluster.parent ?? upstream.url }));
  const metrics = new BerthMetrics({ fills: { list: () => fills.list() }, backoff, upstreams: reached, ...(coordination ? { coordination: () => coordinationStatus(coordination) } : {}) });
  const { fills, internal } = await startFills(storage, coordination, metrics, log);
  if (storage.s3) registerS3Metrics(metrics.registry, s3MetricSources(storage.s3));
  const tagLists = () => (coordination ? new SharedTagListCache(coordination.redis, coordination.fallbacks) : new LocalTagListCache());
  const lookups = coordination ? new SharedLookups(coordination.leases, coordination.fallbacks) : new ProcessLookups();
  const mirrors = await createMirrors(config, storage, fills, backoff, metrics, log, tagLists, lookups);
  const defaultMirror = mirrors.find((m) => m.upstream.host === config.defaultUpstream || m.upstream.prefix === config.defaultUpstream);
  const routing = new RoutingRegistry(new HostedRegistry(storage), storage.metadata, mirrors, defaultMirror);
  const auth = await setUpAuth(config, Date.now, (name) => routing.policyNames(name), coordination && sharedKeyStore(coordination, storage));
  const registry = new PlatformRegistry(routing, {
    defaultPlatform: parsePlatform(config.platform)!,
    fallbackArchitectures: (repository) => probed(repository instanceof ProxyRepository ? repository.upstream.archFallback : config.hosted.archFallback),
    // A parent tier probes the -$(ARCH) names itself: asked here too, each miss would multiply.
    upstreamBridges: (repository) => config.cluster.parent !== undefined && repository instanceof ProxyRepository,
    blobs: storage.blobs,
    synthesized: storage.synthesized,
  });
  await storage.blobs.usage.load();
  const collector = new ContentCollector(
    storage,
    mirrors,
    { maxCacheBytes: config.cache.maxSize, minAgeMs: config.cache.minAge, uploadMaxAgeMs: config.storage.uploadMaxAge },
    log.child({ component: "collector" }),
    metrics,
  );
  const collecting =
    config.cache.collectInterval > 0
      ? setInterval(() => collector.run().catch((err: unknown) => log.error({ err }, "content collection failed")), config.cache.collectInterval).unref()
      : undefined;
  let closing = false;
  const admission = setUpAdmission(config, registry, auth.access, log);
  const app = createApp({
    registry,
    access: auth.access,
    ...(auth.tokenService ? { tokenRoutes: createTokenRoutes(auth.tokenService, log, metrics) } : {}),
    ...(admission && !admission.listener ? { admissionRoutes: admission.routes } : {}),
    adminRoutes: createAdminRoutes({ collector }),
    requestMetrics: metrics,
    metricsRoute: createMetricsRoute(metrics),
    statusPage: createStatusPage({ status: () => metrics.status(), loopbackOnly: config.auth.mode !== "none" }),
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
  await listenOn(server, config.listen);
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
    ...(coordination ? { coordination } : {}),
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
      await internal?.close();
      await Promise.all(mirrors.map((m) => m.client.close()));
      for (const mirror of mirrors) mirror.tagLists.close();
      await auth.close();
      await admissionClosed;
      await storage.blobs.usage.save().catch((err: unknown) => log.warn({ err }, "could not save blob access times"));
      await opened.close();
    },
  };
}

/**
 * This process's fills, or with coordination the cluster's: one upstream fetch per blob for all
 * replicas, the ones this replica leads served to the others on its internal port.
 */
async function startFills(storage: Storage, coordination: Coordination | undefined, metrics: BerthMetrics, log: Logger): Promise<{ fills: Fills; internal?: InternalListener }> {
  if (!coordination) return { fills: new BlobFills(storage.driver, storage.blobs) };
  const { listen, url, secret } = coordination.internal;
  const internal = await InternalListener.start({ listen, ...(url ? { url } : {}), secret }, log);
  const fills = new ClusterFills(storage.driver, storage.blobs, coordination, internal.url, metrics, log.child({ component: "cluster-fills" }));
  internal.serve(fills);
  return { fills, internal };
}

async function createMirrors(
  config: BerthConfig,
  storage: Storage,
  fills: Fills,
  backoff: UpstreamBackoff,
  metrics: BerthMetrics,
  log: Logger,
  tagLists: () => TagListCache,
  lookups: ClusterLookups,
): Promise<Mirror[]> {
  const keyring = async (files: readonly string[]) => {
    const loaded = new Keyring(files, { onProblem: (problem) => log.warn({ problem: problem.message }, "credential source skipped") });
    await loaded.load();
    return loaded;
  };
  const shared = await keyring(config.credentials);
  const keyrings = await Promise.all(config.upstreams.map((upstream) => keyring(upstream.credentials)));
  const tenantKeyrings = new Map(await Promise.all(config.tenants.map(async (t) => [t.name, await keyring(t.credentials)] as const)));
  const parent = config.cluster.parent === undefined ? undefined : new ParentTier(config.cluster.parent, await keyring(config.cluster.credentials));
  return config.upstreams.map((upstream, i) => {
    const endpoint = { host: upstream.host, url: upstream.url, connectTimeoutMs: upstream.connectTimeout, readTimeoutMs: upstream.readTimeout };
    const client = parent
      ? new UpstreamClient(parent.endpointFor(endpoint), parent.lookup, metrics.upstream(upstream.host))
      : new UpstreamClient(endpoint, new KeyringUnion([keyrings[i], shared]), metrics.upstream(upstream.host));
    const isolated = config.auth.mode !== "none" && upstream.tenantIsolation;
    return {
      upstream,
      client,
      storage,
      cache: new RepositoryMetadata(storage.driver, `mirrors/${upstream.prefix}`),
      recentManifests: new RecentManifests(),
      fills,
      backoff,
      tagLists: tagLists(),
      lookups,
      visibility: new MirrorVisibility(storage.driver, `mirrors/${upstream.prefix}`, upstream.accessConfirmationTTL),
      delivered: new DeliveredBlobs(storage.driver, `mirrors/${upstream.prefix}`),
      // A viewer is the credentials a request reaches the upstream with: a tenant's own, or
      // berth's, which every other principal shares (one access check for all of them).
      requesterFor: (who?: RequestedBy): Requester => {
        if (!isolated) return { client };
        const own = who?.tenant === undefined ? undefined : tenantKeyrings.get(who.tenant);
        if (!own) return { viewer: BERTH_VIEWER, client };
        const viewer = `tenant:${who!.tenant}`;
        return { viewer, client: client.as(viewer, () => new KeyringUnion([own, keyrings[i], shared])) };
      },
      meter: metrics.upstream(upstream.host),
      log: log.child({ upstream: upstream.host }),
    };
  });
}

/** Token signing keys every replica signs and verifies with, kept in the shared store. */
function sharedKeyStore(coordination: Coordination, storage: Storage): BucketKeys {
  const index = coordination.channel("object-index");
  return new BucketKeys(storage.driver, coordination.internal.secret, () => index.subscribed);
}

function coordinationStatus(coordination: Coordination): CoordinationStatus {
  return { replicaId: coordination.replicaId, up: coordination.up, since: coordination.since, fallbacks: coordination.fallbacks.snapshot() };
}

/** The viewer of requests that reach an upstream with berth's own credentials (or none). */
const BERTH_VIEWER = "berth";

/** The storage `config` names and, with `coordination` configured, what it shares with the other replicas. */
export interface ReplicaStorage {
  storage: Storage;
  coordination?: Coordination;
  /** Closes the storage, then what it shares through (the collection guard, the coordination). */
  close(): Promise<void>;
}

/**
 * Opens the storage as this replica uses it: on its own, or with `coordination` configured
 * sharing upload sessions, collection and the object index with the replicas on the same bucket.
 */
export async function openReplicaStorage(config: Pick<BerthConfig, "storage" | "coordination">, log: Logger): Promise<ReplicaStorage> {
  const coordination = config.coordination && (await openCoordination(config.coordination, log));
  const sharing = coordination ? sharedStorage(config.coordination!, coordination, log) : {};
  const closeSharing = async () => {
    await sharing.collectionGuard?.close();
    await coordination?.close();
  };
  const storage = await openStorage(config.storage, sharing).catch(async (err: unknown) => {
    await closeSharing();
    throw err;
  });
  return {
    storage,
    ...(coordination ? { coordination } : {}),
    close: async () => {
      await storage.close();
      await closeSharing();
    },
  };
}

/**
 * What replicas sharing one bucket share of the storage: upload sessions, taken by any of them,
 * what collection must spare, and the index of the bucket's objects.
 */
function sharedStorage(config: CoordinationConfig, coordination: Coordination, log: Logger): StorageSharing {
  return {
    uploadLocks: new ClusterUploadLocks(coordination.leases, log.child({ component: "uploads" })),
    sessionHashes: new SavedSessionHashes(),
    collectionGuard: new SharedCollectionGuard(coordination, config.collection, log.child({ component: "collector" })),
    objectIndex: new SharedObjectIndex(new LocalObjectIndex(), coordination.channel("object-index"), () => coordination.fallbacks.count("object-index")),
  };
}

function probed(fallback: ArchFallbackConfig): readonly string[] {
  return fallback.enabled ? fallback.architectures : [];
}
