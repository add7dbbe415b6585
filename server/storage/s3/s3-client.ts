import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { parse as parseYaml } from "yaml";
import type { S3Config } from "../../../config/storage-schema.js";
import { S3Traffic } from "./s3-traffic.js";

/** The object readiness writes (S3Driver's probe): counted as operation Probe, apart from the requests serving clients. */
export const PROBE_KEY = "_probe";

/** How long credentials read from a file are used before the file is read again (a rotated Secret). */
const CREDENTIALS_FILE_TTL_MS = 5 * 60_000;

// The pinned SDK runs on Node.js 20; its warning is about releases berth does not use.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

/**
 * An S3 client for berth's bucket: bounded connect and idle timeouts, no retries of its own
 * (S3Bucket retries), path-style addressing when asked, and checksums only where S3 requires them for
 * stores that predate the SDK's default integrity checksums. Every request is counted in
 * `traffic`.
 */
export function createS3Client(config: S3Config, traffic: S3Traffic): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: config.maxSockets };
  const client = new S3Client({
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    forcePathStyle: config.forcePathStyle,
    maxAttempts: 1, // S3Bucket retries, with a fresh body for each attempt
    ...(config.checksums === "when-required" ? { requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" } : {}),
    ...(credentialsOf(config) ? { credentials: credentialsOf(config) } : {}),
    requestHandler: {
      connectionTimeout: config.connectTimeout,
      // Until the response headers; a request body's time to send is added per request, and a
      // response body that stalls is cut by S3Bucket.
      requestTimeout: config.timeout,
      throwOnRequestTimeout: true,
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
    },
  });
  // DeleteObjects must carry Content-MD5, which the SDK stopped sending when it moved to
  // its own checksums; stores that predate those refuse the request without it.
  // An empty body gets an explicit Content-Length: 0.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (context.commandName === "DeleteObjectsCommand" && typeof request.body === "string" && request.headers) {
        request.headers["content-md5"] = createHash("md5").update(request.body).digest("base64");
      }
      // The SDK leaves the header out for an empty body, then warns about streams of unknown length.
      if (request.headers && !("content-length" in request.headers) && (request.body === undefined || (request.body as { length?: number }).length === 0)) {
        request.headers["content-length"] = "0";
      }
      return next(args);
    },
    { step: "build", name: "berthDeleteObjectsContentMd5" },
  );
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const key = (args.input as { Key?: string }).Key;
      traffic.request(key?.endsWith(PROBE_KEY) ? "Probe" : (context.commandName ?? "unknown"), args.request as { headers?: Record<string, string> });
      return next(args);
    },
    { step: "finalizeRequest", name: "berthTraffic", priority: "low" },
  );
  return client;
}

function credentialsOf(config: S3Config): S3ClientConfig["credentials"] {
  switch (config.credentials.source) {
    case "default":
      return undefined;
    case "env":
      return async () => {
        const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
        const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
        if (!accessKeyId || !secretAccessKey) throw new Error("storage.s3.credentials.source env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set");
        return { accessKeyId, secretAccessKey, ...(process.env.AWS_SESSION_TOKEN ? { sessionToken: process.env.AWS_SESSION_TOKEN } : {}) };
      };
    case "file": {
      const file = config.credentials.file!;
      return async () => ({ ...(await readCredentialsFile(file)), expiration: new Date(Date.now() + CREDENTIALS_FILE_TTL_MS) });
    }
  }
}

/** Reads `accessKeyId`, `secretAccessKey` and optional `sessionToken` from a YAML or JSON file. */
export async function readCredentialsFile(file: string): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }> {
  const document = parseYaml(await readFile(file, "utf8")) as Record<string, unknown> | null;
  const accessKeyId = document?.accessKeyId;
  const secretAccessKey = document?.secretAccessKey;
  const sessionToken = document?.sessionToken;
  if (typeof accessKeyId !== "string" || typeof secretAccessKey !== "string") throw new Error(`${file}: needs accessKeyId and secretAccessKey`);
  return { accessKeyId, secretAccessKey, ...(typeof sessionToken === "string" ? { sessionToken } : {}) };
}
