import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onProcessExit } from "./process-exit.js";

/** A fresh directory under the OS temp dir; removed by `remove()`, or at the latest when the process exits. */
export interface TempDir {
  readonly path: string;
  remove(): Promise<void>;
}

/** Creates a temp dir named `berth-<label>-XXXXXX`. */
export async function makeTempDir(label: string): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `berth-${label}-`));
  const unregister = onProcessExit(() => rmSync(path, { recursive: true, force: true }));
  return {
    path,
    remove: async () => {
      unregister();
      await rm(path, { recursive: true, force: true });
    },
  };
}
