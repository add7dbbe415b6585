import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { runCommand } from "../test/support/command.js";
import type { S3Endpoint } from "../test/support/swift-s3.js";

/** test/setup/swift-s3.sh, from dist/bench/. */
const SWIFT = resolve(__dirname, "../../test/setup/swift-s3.sh");

/** OpenStack Swift's s3api on loopback (test/setup/swift-s3.sh) with one bucket, for a scenario. */
export class BenchSwift {
  private constructor(
    private readonly dir: string,
    readonly endpoint: S3Endpoint,
    readonly bucket: string,
  ) {}

  static async start(dir: string, bucket: string): Promise<BenchSwift> {
    const { stdout } = await runCommand("bash", [SWIFT, "start", dir, "0", bucket], { timeoutMs: 600_000 });
    const env = Object.fromEntries(stdout.trim().split("\n").map((line) => line.split(/=(.*)/s, 2) as [string, string]));
    const credentialsFile = join(dir, "s3-credentials.yaml");
    await writeFile(credentialsFile, `accessKeyId: "${env.S3_ACCESS_KEY_ID}"\nsecretAccessKey: "${env.S3_SECRET_ACCESS_KEY}"\n`, { mode: 0o600 });
    return new BenchSwift(dir, { endpoint: env.S3_ENDPOINT, accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY, region: env.S3_REGION, credentialsFile }, bucket);
  }

  /** berth's `storage` section on this bucket, under `prefix`. */
  storage(prefix = ""): Record<string, unknown> {
    return { driver: "s3", s3: { bucket: this.bucket, prefix, endpoint: this.endpoint.endpoint, forcePathStyle: true, credentials: { source: "file", file: this.endpoint.credentialsFile } } };
  }

  async close(): Promise<void> {
    await runCommand("bash", [SWIFT, "stop", this.dir]);
  }
}
