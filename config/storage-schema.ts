import { z } from "zod";
import { duration } from "./duration.js";
import { size } from "./size.js";

const MiB = 1024 * 1024;

const s3CredentialsSchema = z
  .object({
    source: z
      .enum(["default", "env", "file"])
      .default("default")
      .describe("default: the AWS SDK's chain (env, shared config files, web identity, container and instance roles). env: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN). file: the YAML or JSON file `file` names."),
    file: z
      .string()
      .optional()
      .describe("With source file: a YAML/JSON file with accessKeyId, secretAccessKey and optionally sessionToken (a mounted Secret); re-read every 5 minutes."),
  })
  .strict()
  .prefault({})
  .superRefine((credentials, ctx) => {
    if (credentials.source === "file" && !credentials.file) ctx.addIssue({ code: "custom", path: ["file"], message: "credentials.source file needs credentials.file" });
  });

export const s3Schema = z
  .object({
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "must be an S3 bucket name").describe("The bucket holding everything berth keeps (it must exist)."),
    prefix: z
      .string()
      .regex(/^([A-Za-z0-9._-]+\/)*$/, "must be empty or end with /, path components of letters, digits, . _ -")
      .default("")
      .describe("Key prefix under which berth keeps its store, e.g. berth/; empty: the bucket's root."),
    region: z.string().default("us-east-1").describe("The bucket's region (SigV4 signs with it)."),
    endpoint: z.url({ protocol: /^https?$/ }).optional().describe("S3 endpoint of a store other than AWS (Swift, Ceph, MinIO...); AWS when absent."),
    forcePathStyle: z.boolean().default(false).describe("Address the bucket in the path (http://ENDPOINT/BUCKET/KEY) instead of the host name; most stores other than AWS need it."),
    credentials: s3CredentialsSchema,
    partSize: size("8MiB")
      .refine((bytes) => bytes >= 5 * MiB && bytes <= 2 * 1024 * MiB, "must be between 5MiB (S3's smallest part) and 2GiB (a last part may take up to twice this, under S3's 5GiB)")
      .describe("Size of each multipart-upload part; blobs smaller than one part are written with a single PutObject."),
    checksums: z
      .enum(["when-required", "when-supported"])
      .default("when-required")
      .describe("when-required: send and validate the SDK's integrity checksums only where S3 requires them (stores that predate them, such as Swift's s3api, refuse them). when-supported: the SDK's default, for AWS."),
    connectTimeout: duration("3s").describe("Longest wait to connect to S3."),
    timeout: duration("15s").describe("Longest wait for S3's response headers, or between two chunks of a body; a request past it is retried or fails (clients get 503)."),
    maxAttempts: z.number().int().min(1).max(10).default(3).describe("Attempts per S3 request (the SDK's standard retry with backoff) before a client is answered 503 + Retry-After."),
    maxSockets: z.number().int().min(4).max(1024).default(64).describe("Concurrent connections to S3."),
    spool: z
      .object({
        dir: z.string().optional().describe("Local directory where blobs being written to S3 are spooled (clients joining a fill read it); default STORAGE_ROOT/spool."),
        maxSize: size("10GiB").describe("Cap on spooled bytes: a fill or push of known size that would pass it is answered 503 + Retry-After."),
      })
      .strict()
      .prefault({}),
    abandonedUploadAge: duration("1h").describe("Multipart uploads started longer ago that no write or upload session of this berth owns are aborted by content collection (S3 stores without lifecycle rules, such as Swift, never abort them)."),
  })
  .strict();

export type S3Config = z.output<typeof s3Schema>;

export const storageSchema = z
  .object({
    driver: z.enum(["filesystem", "s3"]).default("filesystem").describe("Where blobs, manifests, tags and uploads live: a local directory (root) or an S3-compatible bucket (s3)."),
    root: z.string().min(1).default("./data").describe("Directory holding blobs, manifests, tags and uploads; with driver s3 only the token signing keys and the spool."),
    uploadMaxAge: duration("168h").describe("Upload sessions started longer ago are abandoned; content collection removes them."),
    s3: s3Schema.optional().describe("The bucket, with driver s3."),
  })
  .strict()
  .prefault({})
  .superRefine((storage, ctx) => {
    if (storage.driver === "s3" && !storage.s3) ctx.addIssue({ code: "custom", path: ["s3"], message: "driver s3 needs storage.s3 (at least a bucket)" });
  });

export type StorageConfig = z.output<typeof storageSchema>;
