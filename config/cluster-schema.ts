import { z } from "zod";

/** Tiers: a node-local berth that fetches every upstream through a cluster berth. See config/README.md. */
export const clusterSchema = z
  .object({
    parent: z
      .url({ protocol: /^https?$/, error: "must be an http:// or https:// URL of a berth" })
      .optional()
      .describe(
        "URL of the cluster tier's berth (http://berth-cluster.berth.svc:5000). Set: every upstream is fetched through it, addressed by its host as ?ns=, never from the registry itself.",
      ),
    credentials: z
      .array(z.string())
      .default([])
      .describe("Credential files for the parent (docker config.json or a dockerconfigjson Secret), keyed by the parent's HOST[:PORT]: a node account of the parent."),
  })
  .strict()
  .prefault({})
  .describe("The tier this berth belongs to.");

export type ClusterConfig = z.output<typeof clusterSchema>;
