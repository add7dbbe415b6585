import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { RedisServer } from "../test/support/redis-server.js";
import { makeTempDir, type TempDir } from "../test/support/temp-dir.js";
import { MIRROR_PREFIX, QuietBerth } from "./quiet-berth.js";
import type { BenchSwift } from "./swift.js";

let clusters = 0;

/**
 * berth's cluster tier as a bench runs it: N quiet replicas on one bucket prefix of their own
 * (a cold store) and one Redis, mirroring `origin` under the prefix `origin` when given.
 */
export class BerthCluster {
  private turn = 0;

  private constructor(
    private readonly dir: TempDir,
    readonly members: QuietBerth[],
  ) {}

  static async start(swift: BenchSwift, redis: RedisServer, count: number, origin?: { host: string; url: string }): Promise<BerthCluster> {
    const dir = await makeTempDir("bench-cluster");
    const members: QuietBerth[] = [];
    try {
      const secretFile = join(dir.path, "internal-secret");
      await writeFile(secretFile, randomBytes(24).toString("hex"), { mode: 0o600 });
      const prefix = `cluster-${process.pid}-${++clusters}/`;
      for (let i = 0; i < count; i++) {
        members.push(
          await QuietBerth.start(origin, {
            storage: swift.storage(prefix),
            coordination: { redis: { url: redis.url, keyPrefix: `berth:${prefix}` }, replicaId: `replica-${i}`, internal: { listen: "127.0.0.1:0", secretFile } },
          }),
        );
      }
      return new BerthCluster(dir, members);
    } catch (err) {
      await Promise.all(members.map((m) => m.close()));
      await dir.remove();
      throw err;
    }
  }

  /** The next replica, round robin: a client behind the Service. */
  next(): QuietBerth {
    return this.members[this.turn++ % this.members.length];
  }

  /** Where replica `member` serves a blob of the mirrored origin's repository. */
  static mirroredBlob(member: QuietBerth, repository: string, digest: string): string {
    return `${member.url}/v2/${MIRROR_PREFIX}/${repository}/blobs/${digest}`;
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => m.close()));
    await this.dir.remove();
  }
}
