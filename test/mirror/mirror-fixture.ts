import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../config/load.js";
import { createLogger } from "../../server/log.js";
import { startBerth, type Berth } from "../../server/server.js";
import { storageConfigFor, testStorageDriver } from "../support/storage-drivers.js";

/**
 * An in-process berth on a free port over a temp storage root (or a bucket, on S3 runs), or on
 * `extra.storage.root` to start again on a stopped one's storage, mirroring the given upstreams.
 * `close()` keeps the storage; `stop()` removes it.
 */
export async function startMirror(upstreams: Record<string, unknown>[], extra: Record<string, unknown> = {}): Promise<Berth & { root: string; stop(): Promise<void> }> {
  const given = extra.storage as { root?: string } | undefined;
  const root = given?.root ?? (await mkdtemp(join(tmpdir(), "berth-mirror-")));
  const storage = { ...(await storageConfigFor(testStorageDriver(), root)), ...given, root };
  const config = parseConfig({ listen: "127.0.0.1:0", upstreams, ...extra, storage }, "test");
  const berth = await startBerth(config, createLogger(process.env.BERTH_TEST_LOG ?? "silent"));
  return {
    ...berth,
    root,
    stop: async () => {
      await berth.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Reads a whole response body, or returns the error that cut it short. */
export async function readFully(response: Response): Promise<Buffer | Error> {
  try {
    return Buffer.from(await response.arrayBuffer());
  } catch (err) {
    return err as Error;
  }
}
