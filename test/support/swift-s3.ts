import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { runCommand } from "./command.js";
import { onProcessExit } from "./process-exit.js";
import { makeTempDir } from "./temp-dir.js";

/** How to reach the S3 endpoint tests use. */
export interface S3Endpoint {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** A YAML file with the keys, as `storage.s3.credentials.file` reads it. */
  credentialsFile: string;
}

const SCRIPT = resolve(__dirname, "../../../test/setup/swift-s3.sh");

// The pinned SDK runs on Node.js 20; its warning is about releases the tests do not use.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

let started: Promise<S3Endpoint> | undefined;

/**
 * The real S3 endpoint of this test process: OpenStack Swift's s3api on loopback. test/run.sh
 * starts one for the whole run and passes it in S3_ENDPOINT (and the keys); a test file run on
 * its own starts one for its process (test/setup/swift-s3.sh), stopped when the process exits.
 */
export function swiftS3(): Promise<S3Endpoint> {
  started ??= (async () => {
    let env: Record<string, string | undefined> = process.env;
    if (!env.S3_ENDPOINT) {
      const dir = await makeTempDir("s3");
      onProcessExit(() => execFileSync("bash", [SCRIPT, "stop", dir.path], { stdio: "ignore" }));
      const { stdout } = await runCommand("bash", [SCRIPT, "start", dir.path], { timeoutMs: 600_000 });
      env = Object.fromEntries(stdout.trim().split("\n").map((line) => line.split(/=(.*)/s, 2) as [string, string]));
    }
    const credentialsDir = await makeTempDir("s3-credentials");
    const credentialsFile = join(credentialsDir.path, "credentials.yaml");
    await writeFile(credentialsFile, `accessKeyId: "${env.S3_ACCESS_KEY_ID}"\nsecretAccessKey: "${env.S3_SECRET_ACCESS_KEY}"\n`, { mode: 0o600 });
    return { endpoint: env.S3_ENDPOINT!, accessKeyId: env.S3_ACCESS_KEY_ID!, secretAccessKey: env.S3_SECRET_ACCESS_KEY!, region: env.S3_REGION ?? "us-east-1", credentialsFile };
  })();
  return started;
}

/** A plain SDK client for the endpoint, as a test inspects a bucket with it. */
export function rawS3Client(s3: S3Endpoint): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

let buckets = 0;

/** A new empty bucket (Swift creates one in milliseconds); left to the endpoint's teardown. */
export async function createBucket(s3: S3Endpoint, label = "berth"): Promise<string> {
  const name = `${label}-${process.pid}-${Date.now().toString(36)}-${buckets++}`.toLowerCase();
  const client = rawS3Client(s3);
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    client.destroy();
  }
  return name;
}

/** berth's `storage.s3` for a bucket on the endpoint; `extra` overrides keys. */
export function s3StorageConfig(s3: S3Endpoint, bucket: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    bucket,
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { source: "file", file: s3.credentialsFile },
    // The smallest part S3 allows, so that the tests' blobs of a few MiB go multipart too.
    partSize: "5MiB",
    abandonedUploadAge: 0,
    ...extra,
  };
}
