import { z } from "zod";
import { admissionSchema } from "./admission-schema.js";
import { authSchema } from "./auth-schema.js";
import { clusterSchema } from "./cluster-schema.js";
import { coordinationSchema } from "./coordination-schema.js";
import { duration } from "./duration.js";
import { size } from "./size.js";
import { storageSchema } from "./storage-schema.js";
import { archFallbackSchema, upstreamsSchema } from "./upstream-schema.js";

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "must be HOST:PORT")
  .describe("Address to listen on, HOST:PORT.");

/** berth's configuration file. Every key has a default; `config/README.md` documents each. */
export const configSchema = z
  .object({
    listen: hostPort.default("127.0.0.1:5000"),
    storage: storageSchema,
    log: z
      .object({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info").describe("Log level of the JSON logs on stderr."),
      })
      .strict()
      .default({ level: "info" }),
    auth: authSchema.describe("Who may pull and push: none, or berth tokens from /token (see config/auth.md)."),
    cache: z
      .object({
        maxSize: size(0).describe("Cap on mirrored content (e.g. 50GiB); least recently used blobs are evicted beyond it. 0 = unbounded. Hosted content never counts or goes."),
        collectInterval: duration("1h").describe("How often garbage collection and eviction run; 0 = only on demand (berth gc)."),
        minAge: duration("1h").describe("Unreferenced blobs younger than this are kept, so a push in progress is never collected."),
      })
      .strict()
      .prefault({}),
    http: z
      .object({
        idleTimeout: duration("60s").describe(
          "A connection on which no byte moves for this long while berth waits for the client (a request body that stops arriving, a response the client stops reading) is cut; a cut upload chunk keeps what arrived. There is no limit on a request's total time. 0 = no idle limit.",
        ),
        headersTimeout: duration("60s")
          .refine((ms) => ms > 0, "must be more than 0")
          .describe("Longest time a client may take to send a request's headers (slow-loris protection)."),
      })
      .strict()
      .prefault({}),
    shutdown: z
      .object({
        gracePeriod: duration("25s").describe(
          "After SIGTERM, how long in-flight transfers may finish before they are aborted. Keep it below the pod's terminationGracePeriodSeconds minus any preStop hook.",
        ),
      })
      .strict()
      .prefault({}),
    platform: z
      .string()
      .regex(/^[a-z0-9._-]+\/[a-z0-9._-]+(\/[a-z0-9._-]+)?$/, "must be OS/ARCH[/VARIANT]")
      .default("linux/amd64")
      .describe("Platform whose manifest is served to clients that cannot take an image index."),
    hosted: z
      .object({ archFallback: archFallbackSchema })
      .strict()
      .prefault({})
      .describe("Hosted repositories."),
    upstreams: upstreamsSchema,
    defaultUpstream: z
      .string()
      .optional()
      .describe("Host of the upstream that serves names matching no hosted repository, ?ns= or prefix."),
    credentials: z
      .array(z.string())
      .default([])
      .describe("Credential files tried for every upstream (after the upstream's own)."),
    tenants: z
      .array(
        z
          .object({
            name: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "must be a DNS label (a Kubernetes namespace name)"),
            credentials: z.array(z.string()).default([]).describe("The tenant's own upstream credential files (e.g. its namespace's pull Secrets), tried first."),
          })
          .strict(),
      )
      .default([])
      .describe("Tenants with upstream credentials of their own (auth mode token)."),
    admission: admissionSchema,
    cluster: clusterSchema,
    coordination: coordinationSchema,
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.cluster.parent !== undefined) refuseBesideParent(config, ctx);
    if (config.coordination !== undefined && config.storage.driver !== "s3") {
      ctx.addIssue({ code: "custom", path: ["coordination"], message: "replicas share one bucket: coordination needs storage.driver s3" });
    }
    if (config.defaultUpstream !== undefined && !config.upstreams.some((u) => u.host === config.defaultUpstream || u.prefix === config.defaultUpstream)) {
      ctx.addIssue({ code: "custom", path: ["defaultUpstream"], message: `${config.defaultUpstream} is not a configured upstream` });
    }
  });

export type BerthConfig = z.infer<typeof configSchema>;

/**
 * Behind a parent berth never reaches a registry itself, and acts at the parent as its one node
 * account: credentials for registries would lie unused on every node, and a tenant's own
 * credentials cannot be carried (docs/design.md §9).
 */
function refuseBesideParent(config: { credentials: string[]; upstreams: { credentials: string[] }[]; tenants: { credentials: string[] }[] }, ctx: z.RefinementCtx): void {
  const why = "with cluster.parent berth fetches only through the parent: registry credentials belong in the parent's config";
  if (config.credentials.length > 0) ctx.addIssue({ code: "custom", path: ["credentials"], message: why });
  config.upstreams.forEach((upstream, i) => {
    if (upstream.credentials.length > 0) ctx.addIssue({ code: "custom", path: ["upstreams", i, "credentials"], message: why });
  });
  if (config.tenants.length > 0) {
    ctx.addIssue({ code: "custom", path: ["tenants"], message: "with cluster.parent berth is single-tenant: it acts at the parent as its node account, so tenants belong in the parent's config" });
  }
}
