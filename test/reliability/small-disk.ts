import { spawnSync } from "node:child_process";
import { mkdtemp, rm, rmdir, statfs, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "../support/command.js";
import { onProcessExit } from "../support/process-exit.js";

/**
 * A real, small filesystem (tmpfs of `size`, e.g. "8m") mounted on a fresh temp dir, so that
 * writes fail with ENOSPC as on a full node disk; it can be filled, freed and remounted
 * read-only. Needs root (CAP_SYS_ADMIN), as CI and the dev machines run; unmounted by
 * `remove()` or, at the latest, when the test process exits.
 */
export class SmallDisk {
  private fillers = 0;

  private constructor(
    readonly path: string,
    private readonly unregister: () => void,
  ) {}

  static async mount(size: string): Promise<SmallDisk> {
    const path = await mkdtemp(join(tmpdir(), "berth-small-disk-"));
    try {
      await runCommand("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", path]);
    } catch (err) {
      await rmdir(path);
      throw new Error(`cannot mount a ${size} tmpfs on ${path} (the full-disk tests need root): ${(err as Error).message}`);
    }
    // Last resort, synchronous: a lazy unmount never blocks on a busy mount.
    return new SmallDisk(path, onProcessExit(() => spawnSync("umount", ["-l", path])));
  }

  /** Writes a file of zeros until the disk is full but for `leaveBytes`; returns its path. */
  async fill(leaveBytes = 0): Promise<string> {
    const path = join(this.path, `filler-${++this.fillers}`);
    const free = await this.freeBytes();
    await writeFile(path, Buffer.alloc(Math.max(0, free - leaveBytes)));
    return path;
  }

  async freeBytes(): Promise<number> {
    const info = await statfs(this.path);
    return info.bavail * info.bsize;
  }

  async remount(mode: "ro" | "rw"): Promise<void> {
    await runCommand("mount", ["-o", `remount,${mode}`, this.path]);
  }

  async remove(): Promise<void> {
    await runCommand("umount", [this.path]).catch(() => runCommand("umount", ["-l", this.path]));
    this.unregister();
    await rm(this.path, { recursive: true, force: true });
  }
}
