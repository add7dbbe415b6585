import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readdir, writeFile, mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { FilesystemDriver } from "../../server/storage/filesystem-driver.js";
import { RootLeasedError } from "../../server/storage/root-lease.js";
import { onProcessExit } from "../support/process-exit.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

const DRIVER_MODULE = resolve(__dirname, "../../server/storage/filesystem-driver.js");

/** Another process that opens the root with the filesystem driver and holds it until killed. */
async function holdRoot(root: string): Promise<ChildProcess> {
  const script = `const { FilesystemDriver } = require(${JSON.stringify(DRIVER_MODULE)});
new FilesystemDriver(${JSON.stringify(root)}).initialise().then(() => { console.log("held"); setInterval(() => {}, 1000); }, (err) => { console.error(err.message); process.exit(3); });`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const unregister = onProcessExit(() => child.kill("SIGKILL"));
  child.once("exit", unregister);
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  assert.equal(line.toString().trim(), "held");
  return child;
}

describe("root lease", () => {
  let dir: TempDir;
  let root: string;
  let holder: ChildProcess | undefined;

  beforeEach(async () => {
    dir = await makeTempDir("lease");
    root = join(dir.path, "root");
  });
  afterEach(async () => {
    holder?.kill("SIGKILL");
    await dir.remove();
  });

  it("refuses to open a root another live process holds, and leaves that process's temp files alone", async () => {
    holder = await holdRoot(root);
    await writeFile(join(root, "_tmp", "write-in-flight"), "bytes");
    await assert.rejects(new FilesystemDriver(root).initialise(), (err: unknown) => err instanceof RootLeasedError && new RegExp(`pid ${holder!.pid}`).test(err.message));
    assert.deepEqual(await readdir(join(root, "_tmp")), ["write-in-flight"]);
  });

  it("takes over the root of a process that was killed, and clears its temp files", async () => {
    holder = await holdRoot(root);
    await writeFile(join(root, "_tmp", "left-by-a-crash"), "bytes");
    holder.kill("SIGKILL");
    await once(holder, "exit");
    const driver = new FilesystemDriver(root);
    await driver.initialise();
    assert.deepEqual(await readdir(join(root, "_tmp")), []);
    await driver.close();
  });

  it("is given back on close, so the next process opens the root at once", async () => {
    await mkdir(root, { recursive: true });
    const first = new FilesystemDriver(root);
    await first.initialise();
    await first.close();
    holder = await holdRoot(root);
  });
});
