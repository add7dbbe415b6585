import { z } from "zod";
import { duration } from "./duration.js";

/**
 * Replicas: N berth processes on one bucket, coordinated through Redis. Absent: one process
 * coordinates with nobody (today's behaviour). See config/README.md.
 */
export const coordinationSchema = z
  .object({
    redis: z
      .object({
        url: z
          .url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL" })
          .describe("Redis every replica shares (redis://[:password@]host:6379/db). Everything berth keeps there has a TTL and can be rebuilt."),
        keyPrefix: z.string().default("berth:").describe("Prefix of every key berth writes, so several berth clusters can share one Redis."),
        commandTimeout: duration("1s").describe("Longest wait for one Redis command; past it berth acts as if Redis were down."),
      })
      .strict(),
    replicaId: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,128}$/)
      .optional()
      .describe("This replica's name among the others. Default: $BERTH_REPLICA_ID, else the host name (a pod's name)."),
    internal: z
      .object({
        listen: z
          .string()
          .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "must be HOST:PORT")
          .default("0.0.0.0:5001")
          .describe("Where this replica answers the others (streams of blob fills in flight)."),
        url: z
          .url({ protocol: /^https?$/ })
          .optional()
          .describe("How the other replicas reach this one's internal listener. Default: $BERTH_INTERNAL_URL, else http://$POD_IP:PORT."),
        secretFile: z.string().min(1).describe("File holding the secret every replica shares; a request to the internal port without it is refused."),
      })
      .strict(),
    collection: z
      .object({
        pinTTL: duration("30s").describe("How long a replica's pin on a digest it looks at, links or reads lasts unless renewed (reads in progress renew theirs); after Redis restarts, collection waits pinTTL + listingLag."),
        listingLag: duration("30s").describe("How far behind writes a bucket listing may be: a digest pinned this recently is spared by collection, whatever the listing shows."),
      })
      .strict()
      .default({ pinTTL: 30_000, listingLag: 30_000 })
      .describe("Content collection across replicas: one leader, pins, doomed and condemned digests in Redis."),
  })
  .strict()
  .optional()
  .describe("Replicas sharing one bucket, coordinated through Redis; absent: a single process.");

export type CoordinationConfig = NonNullable<z.output<typeof coordinationSchema>>;
