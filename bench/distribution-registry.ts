import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { Daemon } from "../test/support/daemon.js";
import { makeTempDir, type TempDir } from "../test/support/temp-dir.js";
import type { S3Endpoint } from "../test/support/swift-s3.js";

/**
 * A hosted CNCF Distribution 2.8 (`docker-registry serve`) on a free loopback port, on its
 * filesystem or on a bucket through its own s3 driver (driver defaults; redirects off, so
 * that it serves the bytes itself, as berth does). No access log, no upload purging.
 */
export class DistributionRegistry {
  private constructor(
    private readonly dir: TempDir,
    private readonly daemon: Daemon,
    /** `127.0.0.1:PORT`. */
    readonly host: string,
  ) {}

  static async start(storage: "filesystem" | { s3: S3Endpoint; bucket: string }): Promise<DistributionRegistry> {
    const dir = await makeTempDir("bench-distribution");
    try {
      const driver =
        storage === "filesystem"
          ? { filesystem: { rootdirectory: join(dir.path, "storage") } }
          : {
              s3: {
                accesskey: storage.s3.accessKeyId,
                secretkey: storage.s3.secretAccessKey,
                region: storage.s3.region,
                regionendpoint: storage.s3.endpoint,
                bucket: storage.bucket,
                secure: false,
                v4auth: true,
              },
              redirect: { disable: true },
            };
      const config = {
        version: 0.1,
        log: { level: "info", formatter: "text", accesslog: { disabled: true } },
        storage: { ...driver, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } },
        http: { addr: "127.0.0.1:0", secret: randomBytes(16).toString("hex") },
      };
      const configPath = join(dir.path, "config.yml");
      await writeFile(configPath, toYaml(config));
      const { daemon, ready } = await Daemon.start({
        name: "docker-registry",
        command: "docker-registry",
        args: ["serve", configPath],
        // Debian's build panics at start with its s3 driver while AWS_CA_BUNDLE is set.
        env: { AWS_CA_BUNDLE: undefined },
        readyLine: /listening on (127\.0\.0\.1:\d+)/,
        logFile: join(dir.path, "registry.log"),
      });
      return new DistributionRegistry(dir, daemon, ready[1]);
    } catch (err) {
      await dir.remove();
      throw err;
    }
  }

  /** `http://127.0.0.1:PORT`. */
  get url(): string {
    return `http://${this.host}`;
  }

  get pid(): number {
    return this.daemon.pid;
  }

  async close(): Promise<void> {
    await this.daemon.stop();
    await this.dir.remove();
  }
}
