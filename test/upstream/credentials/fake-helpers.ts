import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

/** A temp dir of `docker-credential-<name>` shell scripts, put first on PATH while in use. */
export class FakeHelpers {
  private savedPath: string | undefined;

  private constructor(readonly dir: string) {}

  static async install(): Promise<FakeHelpers> {
    const helpers = new FakeHelpers(await mkdtemp(join(tmpdir(), "berth-helpers-")));
    helpers.savedPath = process.env.PATH;
    process.env.PATH = `${helpers.dir}${delimiter}${process.env.PATH ?? ""}`;
    return helpers;
  }

  /** Writes `docker-credential-<name>`; `$LOG` in the body is a file in the temp dir for that helper. */
  async add(name: string, body: string): Promise<void> {
    const path = join(this.dir, `docker-credential-${name}`);
    await writeFile(path, `#!/bin/sh\nLOG='${this.logPath(name)}'\n${body}\n`);
    await chmod(path, 0o755);
  }

  logPath(name: string): string {
    return join(this.dir, `${name}.log`);
  }

  async remove(): Promise<void> {
    process.env.PATH = this.savedPath;
    await rm(this.dir, { recursive: true, force: true });
  }
}
