import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BerthProcess } from "./berth-process.js";
import { RedisServer } from "./redis-server.js";
import { createBucket, s3StorageConfig, swiftS3 } from "./swift-s3.js";
import { makeTempDir, type TempDir } from "./temp-dir.js";

export interface ReplicasOptions {
  /** How many berth processes; default 3. */
  count?: number;
  /** berth's config besides storage and coordination (upstreams, auth, ...), the same for every replica. */
  config?: Record<string, unknown>;
  /** Added to every replica's environment. */
  env?: NodeJS.ProcessEnv;
  /** `storage.s3` settings besides the bucket and the endpoint (e.g. `abandonedUploadAge`). */
  s3?: Record<string, unknown>;
  /** `coordination` settings besides Redis, the replica id and the internal port (e.g. `collection`). */
  coordination?: Record<string, unknown>;
}

/**
 * N berth processes as a cluster tier runs them: one bucket on the run's Swift s3api, one
 * Redis, one shared secret for the internal port, each replica with a local root of its own.
 * Requests can be spread over the replicas (`next()`), one may be killed and restarted, and
 * Redis may be stopped and started again under them.
 */
export class Replicas {
  private turn = 0;

  private constructor(
    private readonly dir: TempDir,
    readonly redis: RedisServer,
    readonly bucket: string,
    readonly members: BerthProcess[],
  ) {}

  static async start(options: ReplicasOptions = {}): Promise<Replicas> {
    const dir = await makeTempDir("replicas");
    const redis = await RedisServer.start();
    try {
      const s3 = await swiftS3();
      const bucket = await createBucket(s3);
      const secretFile = join(dir.path, "internal-secret");
      await writeFile(secretFile, randomBytes(24).toString("hex"), { mode: 0o600 });
      const members = await Promise.all(
        Array.from({ length: options.count ?? 3 }, (_, i) =>
          BerthProcess.start({
            env: options.env,
            config: {
              ...options.config,
              storage: { driver: "s3", s3: s3StorageConfig(s3, bucket, options.s3) },
              coordination: { ...options.coordination, redis: { url: redis.url }, replicaId: `replica-${i}`, internal: { listen: "127.0.0.1:0", secretFile } },
            },
          }),
        ),
      );
      return new Replicas(dir, redis, bucket, members);
    } catch (err) {
      await redis.close();
      await dir.remove();
      throw err;
    }
  }

  /** The replicas' URLs, in order. */
  get urls(): string[] {
    return this.members.map((member) => member.url);
  }

  /** The next replica's URL, round robin: a client behind a Service. */
  next(): string {
    return this.members[this.turn++ % this.members.length].url;
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((member) => member.close()));
    await this.redis.close();
    await this.dir.remove();
  }
}
