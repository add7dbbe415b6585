import express, { type Request, type Response, type NextFunction } from "express";
import type { AccessController, AccessRequest, Principal } from "../auth/access.js";
import { RegistryError } from "../registry/errors.js";
import type { Digest } from "../reference/digest.js";
import type { Registry, Repository, RepositoryRoute, RequestedBy } from "../registry/registry.js";
import type { Logger } from "../log.js";
import { NO_METRICS, type RequestMetrics } from "../metrics/registry-metrics.js";
import { deleteBlob, getBlob, headBlob } from "./blob-handlers.js";
import { listCatalog, listReferrers, listTags } from "./listing-handlers.js";
import { noteV2Path, requestLog } from "./request-log.js";
import { deleteManifest, getManifest, putManifest } from "./manifest-handlers.js";
import { API_VERSION_HEADER, sendError, sendJson } from "./responses.js";
import { appendUpload, cancelUpload, completeUpload, startUpload, uploadStatus } from "./upload-handlers.js";
import { existingManifestReference, parseV2Path, pushManifestReference, type V2Path } from "./v2-path.js";

export interface AppDependencies {
  registry: Registry;
  access: AccessController;
  log: Logger;
  /** Resolves when berth can serve: storage writable, config loaded, not shutting down. */
  ready: () => Promise<boolean>;
  /** /token and /token/jwks, in `auth.mode: token`. */
  tokenRoutes?: express.Router;
  /** /admission, when the admission webhook has no listener of its own. */
  admissionRoutes?: express.Router;
  /** /admin/* (loopback only): gc. */
  adminRoutes?: express.Router;
  /** Counts every request (the request log writes one line per request either way). */
  requestMetrics?: RequestMetrics;
  /** /metrics, for Prometheus. */
  metricsRoute?: express.Router;
  /** /ui, the status page. */
  statusPage?: express.Router;
}

export function createApp(deps: AppDependencies): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");
  app.set("query parser", "simple");
  app.use(requestLog(deps.log, deps.requestMetrics ?? NO_METRICS));

  app.get("/healthz", (_req, res) => {
    res.type("text/plain").send("ok\n");
  });
  app.get("/readyz", async (_req, res) => {
    const ready = await deps.ready().catch(() => false);
    res.status(ready ? 200 : 503).type("text/plain").send(ready ? "ready\n" : "not ready\n");
  });

  if (deps.tokenRoutes) app.use(deps.tokenRoutes);
  if (deps.admissionRoutes) app.use(deps.admissionRoutes);
  if (deps.adminRoutes) app.use(deps.adminRoutes);
  if (deps.metricsRoute) app.use(deps.metricsRoute);
  if (deps.statusPage) app.use(deps.statusPage);

  app.use("/v2", (req, res, next) => {
    res.setHeader(API_VERSION_HEADER, "registry/2.0");
    serveV2(req, res, deps).catch(next);
  });

  app.use((req: Request, res: Response) => {
    sendError(req, res, new RegistryError("UNSUPPORTED", `no route for ${req.method} ${req.path}`, undefined, { status: 404 }), deps.log);
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    sendError(req, res, err, deps.log);
  });
  return app;
}

async function serveV2(req: Request, res: Response, deps: AppDependencies): Promise<void> {
  const path = parseV2Path(req.originalUrl.split("?")[0]);
  if (!path) throw new RegistryError("UNSUPPORTED", `no route for ${req.method} ${req.originalUrl.split("?")[0].slice(0, 256)}`, undefined, { status: 404 });
  noteV2Path(res, path);
  const method = req.method === "HEAD" ? "GET" : req.method;
  const operations = OPERATIONS[path.kind];
  const operation = operations[method];
  if (!operation) {
    const allowed = Object.keys(operations).flatMap((m) => (m === "GET" ? ["GET", "HEAD"] : [m]));
    throw new RegistryError("UNSUPPORTED", `${req.method} is not supported here`, undefined, { headers: { Allow: allowed.join(", ") } });
  }
  const route = "name" in path ? await deps.registry.route({ name: path.name, namespace: namespaceOf(req), intent: intentOf(req, path) }) : undefined;
  const principal = await deps.access.authorize(req, accessFor(path, route, operation.actions));
  res.locals.principal = principal;
  await operation.run(req, res, path, { deps, principal, route });
}

/** What an operation runs with: the authorized principal, and the route of its repository (none for `/v2/` and the catalog). */
interface Context {
  deps: AppDependencies;
  principal: Principal;
  route?: RepositoryRoute;
}

/** Whom a repository serves: the principal, with what policy lets it pull (a fallback may read related repositories). */
function requestedBy(principal: Principal, deps: AppDependencies): RequestedBy {
  return { subject: principal.subject, tenant: principal.tenant, mayPull: (policyName) => deps.access.allows(principal, policyName, "pull") };
}

interface Operation {
  actions: AccessRequest["actions"];
  run: (req: Request, res: Response, path: V2Path, context: Context) => Promise<void>;
}

const repositoryOf = (context: Context) => {
  if (!context.route) throw new Error("this route has no repository");
  return context.route.open(requestedBy(context.principal, context.deps));
};

/**
 * Upload sessions belong to a push even when read with GET, so they go where the push goes.
 * So does a blob HEAD: clients send it before uploading (pulls GET blobs), and answering it
 * from a default upstream would make them skip layers the hosted repository lacks.
 */
function intentOf(req: Request, path: V2Path): "read" | "write" {
  if (path.kind === "uploads" || path.kind === "upload") return "write";
  if (path.kind === "blob" && req.method === "HEAD") return "write";
  return req.method === "GET" || req.method === "HEAD" ? "read" : "write";
}

type ByKind<K extends V2Path["kind"]> = Extract<V2Path, { kind: K }>;
const on =
  <K extends V2Path["kind"]>(_kind: K, actions: AccessRequest["actions"], run: (req: Request, res: Response, path: ByKind<K>, context: Context) => Promise<void>): Operation => ({
    actions,
    run: (req, res, path, context) => run(req, res, path as ByKind<K>, context),
  });

const OPERATIONS: Record<V2Path["kind"], Record<string, Operation>> = {
  base: {
    GET: on("base", [], async (_req, res) => sendJson(res, 200, {})),
  },
  catalog: {
    GET: on("catalog", [], async (req, res, _path, { deps, principal }) =>
      listCatalog(req, res, deps.registry, (name) => deps.access.allows(principal, name, "pull")),
    ),
  },
  manifest: {
    GET: on("manifest", ["pull"], async (req, res, path, context) => {
      const reference = existingManifestReference(path.reference);
      await getManifest(req, res, await repositoryOf(context), reference);
    }),
    PUT: on("manifest", ["pull", "push"], async (req, res, path, context) => {
      const reference = pushManifestReference(path.reference);
      await putManifest(req, res, await repositoryOf(context), reference);
    }),
    DELETE: on("manifest", ["delete"], async (_req, res, path, context) => {
      const reference = existingManifestReference(path.reference);
      await deleteManifest(res, await repositoryOf(context), reference);
    }),
  },
  blob: {
    GET: on("blob", ["pull"], async (req, res, path, context) => {
      const repository = await repositoryOf(context);
      if (req.method === "HEAD") await headBlob(res, repository, path.digest);
      else await getBlob(req, res, repository, path.digest);
    }),
    DELETE: on("blob", ["delete"], async (_req, res, path, context) => deleteBlob(res, await repositoryOf(context), path.digest)),
  },
  uploads: {
    POST: on("uploads", ["pull", "push"], async (req, res, _path, context) =>
      startUpload(req, res, await repositoryOf(context), (digest, from) => mountSources(req, digest, from, context)),
    ),
  },
  upload: {
    GET: on("upload", ["pull", "push"], async (_req, res, path, context) => uploadStatus(res, await repositoryOf(context), path.id)),
    PATCH: on("upload", ["pull", "push"], async (req, res, path, context) => appendUpload(req, res, await repositoryOf(context), path.id)),
    PUT: on("upload", ["pull", "push"], async (req, res, path, context) => completeUpload(req, res, await repositoryOf(context), path.id)),
    DELETE: on("upload", ["pull", "push"], async (_req, res, path, context) => cancelUpload(res, await repositoryOf(context), path.id)),
  },
  tags: {
    GET: on("tags", ["pull"], async (req, res, _path, context) => listTags(req, res, await repositoryOf(context))),
  },
  referrers: {
    GET: on("referrers", ["pull"], async (req, res, path, context) => listReferrers(req, res, await repositoryOf(context), path.digest)),
  },
};

function accessFor(path: V2Path, route: RepositoryRoute | undefined, actions: AccessRequest["actions"]): AccessRequest {
  if (path.kind === "catalog") return { actions: [], registryResource: "catalog" };
  return route ? { repository: route.policyName, scopeNames: route.scopeNames, actions } : { actions };
}

/**
 * The repositories a mount may copy from, in the order to try them: `from`, when the client
 * may pull it (the token must cover it too, as for any request); without `from`, the
 * repositories that linked the blob and that policy lets the client pull. A client that may
 * read none gets an ordinary upload session, so a mount never leaks content.
 */
async function* mountSources(req: Request, digest: Digest, from: string | undefined, context: Context): AsyncGenerator<Repository> {
  const { deps } = context;
  if (from !== undefined) {
    const route = await deps.registry.route({ name: from, intent: "read" });
    let principal: Principal;
    try {
      principal = await deps.access.authorize(req, { repository: route.policyName, scopeNames: route.scopeNames, actions: ["pull"] });
    } catch (err) {
      if (err instanceof RegistryError && (err.status === 401 || err.status === 403)) return;
      throw err;
    }
    yield await route.open(requestedBy(principal, deps));
    return;
  }
  for (const name of (await deps.registry.repositoriesHolding(digest)).reverse()) {
    if (!deps.access.allows(context.principal, name, "pull")) continue;
    // A policy name is a mirror's prefix route or a hosted name: "write" never sends it to the default upstream.
    yield await (await deps.registry.route({ name, intent: "write" })).open(requestedBy(context.principal, deps));
  }
}

function namespaceOf(req: Request): string | undefined {
  const ns = req.query.ns;
  return typeof ns === "string" && ns !== "" ? ns : undefined;
}
