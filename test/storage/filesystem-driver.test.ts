import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterEach, beforeEach, describe, it } from "node:test";
import { FilesystemDriver } from "../../server/storage/filesystem-driver.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

describe("FilesystemDriver", () => {
  let dir: TempDir;
  let root: string;
  let driver: FilesystemDriver;

  beforeEach(async () => {
    dir = await makeTempDir("driver");
    root = join(dir.path, "root");
    driver = new FilesystemDriver(root);
    await driver.initialise();
  });
  afterEach(() => dir.remove());

  const tempFiles = () => readdir(join(root, "_tmp"));

  describe("path safety", () => {
    const unsafe = ["..", "../outside", "a/../../outside", "a/./b", "./a", "/etc/passwd", "a//b", "a/", "", "a/b/..", "a\0b"];

    for (const path of unsafe) {
      it(`refuses the path ${JSON.stringify(path)} for every operation`, async () => {
        const operations: [string, () => Promise<unknown>][] = [
          ["stat", () => driver.stat(path)],
          ["open", () => driver.open(path)],
          ["readSmall", () => driver.readSmall(path)],
          ["writeSmall", () => driver.writeSmall(path, "x")],
          ["move from", () => driver.move(path, "safe")],
          ["move to", () => driver.move("safe", path)],
          ["delete", () => driver.delete(path)],
        ];
        if (path !== "") operations.push(["list", () => driver.list(path)], ["hasAny", () => driver.hasAny(path)]);
        await driver.writeSmall("safe", "content");
        for (const [name, operation] of operations) {
          await assert.rejects(operation(), /invalid storage path|escapes root/, name);
        }
        const pending = await driver.createPending();
        pending.stream.end("x");
        await assert.rejects(pending.commit(path), /invalid storage path|escapes root/);
        assert.deepEqual(await tempFiles(), []);
      });
    }

    it("never writes outside its root", async () => {
      await writeFile(join(dir.path, "outside"), "untouched");
      await assert.rejects(driver.writeSmall("../outside", "overwritten"));
      await assert.rejects(driver.delete("../outside"));
      assert.equal(await readFile(join(dir.path, "outside"), "utf8"), "untouched");
    });
  });

  describe("small objects", () => {
    it("writes, reads, stats, lists and deletes an object", async () => {
      await driver.writeSmall("a/b/c", "hello");
      assert.equal((await driver.readSmall("a/b/c"))?.toString(), "hello");
      assert.equal((await driver.stat("a/b/c"))?.size, 5);
      assert.deepEqual(await driver.list("a/b"), ["c"]);
      await driver.delete("a/b/c");
      assert.equal(await driver.readSmall("a/b/c"), undefined);
      assert.equal(await driver.stat("a/b/c"), undefined);
    });

    it("answers absent paths with undefined or an empty list, and deletes them without error", async () => {
      assert.equal(await driver.stat("absent"), undefined);
      assert.equal(await driver.open("absent"), undefined);
      assert.equal(await driver.readSmall("absent/deeper"), undefined);
      assert.deepEqual(await driver.list("absent"), []);
      await driver.delete("absent/deeper");
    });

    it("treats a directory as no object", async () => {
      await driver.writeSmall("dir/file", "x");
      assert.equal(await driver.readSmall("dir"), undefined);
      assert.equal(await driver.open("dir"), undefined);
    });

    it("replaces an object atomically: concurrent readers see the old or a new value, never a torn one", async () => {
      const values = Array.from({ length: 40 }, (_, i) => `value-${i}-${"x".repeat(64 * 1024)}`);
      await driver.writeSmall("tag", values[0]);
      const seen = new Set<string>();
      await Promise.all([
        ...values.map((value) => driver.writeSmall("tag", value)),
        ...values.map(async () => seen.add((await driver.readSmall("tag"))!.toString())),
      ]);
      for (const value of seen) assert.ok(values.includes(value), `torn read of ${value.length} bytes`);
      assert.ok(values.includes((await driver.readSmall("tag"))!.toString()));
      assert.deepEqual(await tempFiles(), []);
    });

    it("removes its temp file when the write cannot be placed", async () => {
      await driver.writeSmall("occupied/child", "x");
      await assert.rejects(driver.writeSmall("occupied", "a file where a directory is"));
      assert.deepEqual(await tempFiles(), []);
    });

    it("deletes a whole prefix", async () => {
      await driver.writeSmall("prefix/a", "1");
      await driver.writeSmall("prefix/b/c", "2");
      await driver.delete("prefix");
      assert.deepEqual(await driver.list("prefix"), []);
      assert.deepEqual(await driver.list(""), []);
    });

    it("says whether a prefix holds anything: not when absent, empty or an object, yes once it holds an object", async () => {
      assert.equal(await driver.hasAny("absent"), false);
      await mkdir(join(root, "empty"));
      assert.equal(await driver.hasAny("empty"), false);
      await driver.writeSmall("full/object", "x");
      assert.equal(await driver.hasAny("full"), true);
      assert.equal(await driver.hasAny("full/object"), false);
    });

    it("opens a byte range of an object", async () => {
      await driver.writeSmall("ranged", "0123456789");
      const opened = await driver.open("ranged", { start: 3, end: 6 });
      assert.ok(opened);
      assert.equal(opened.info.size, 10);
      const chunks: Buffer[] = [];
      for await (const chunk of opened.stream) chunks.push(chunk as Buffer);
      assert.equal(Buffer.concat(chunks).toString(), "3456");
    });
  });

  describe("pending objects", () => {
    it("is invisible until committed, then appears whole under its path", async () => {
      const pending = await driver.createPending();
      await pipeline(Readable.from([Buffer.from("part one, "), Buffer.from("part two")]), pending.stream);
      assert.equal(await driver.stat("objects/new"), undefined);
      await pending.commit("objects/new");
      assert.equal((await driver.readSmall("objects/new"))?.toString(), "part one, part two");
      assert.deepEqual(await tempFiles(), []);
    });

    it("leaves nothing behind when discarded, even twice or after a failed stream", async () => {
      const pending = await driver.createPending();
      const failing = new Readable({
        read() {
          this.push(Buffer.from("some bytes"));
          this.destroy(new Error("client went away"));
        },
      });
      await assert.rejects(pipeline(failing, pending.stream), /client went away/);
      await pending.discard();
      await pending.discard();
      assert.deepEqual(await tempFiles(), []);
      await assert.rejects(pending.commit("objects/after-discard"), /already discarded/);
      assert.equal(await driver.stat("objects/after-discard"), undefined);
    });

    it("discards while a write is still in flight, closing its descriptor exactly once", async () => {
      const pending = await driver.createPending();
      pending.stream.write(Buffer.alloc(4 * 1024 * 1024));
      await pending.discard();
      // A second close of the descriptor surfaces as an EBADF error event once the write lands.
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(await tempFiles(), []);
    });

    it("cannot be committed twice", async () => {
      const pending = await driver.createPending();
      pending.stream.end("once");
      await pending.commit("objects/once");
      await assert.rejects(pending.commit("objects/twice"), /already committed/);
      await pending.discard();
      assert.equal((await driver.readSmall("objects/once"))?.toString(), "once");
    });
  });

  it("clears temp files a previous process left behind when initialised", async () => {
    await writeFile(join(root, "_tmp", "left-over"), "partial");
    await driver.writeSmall("kept", "content");
    const restarted = new FilesystemDriver(root);
    await restarted.initialise();
    assert.deepEqual(await tempFiles(), []);
    assert.equal((await restarted.readSmall("kept"))?.toString(), "content");
  });

  it("does not list its temp directory", async () => {
    await mkdir(join(root, "_tmp"), { recursive: true });
    await driver.writeSmall("visible", "x");
    assert.deepEqual(await driver.list(""), ["visible"]);
  });

  it("does not count its temp directory as something the root holds", async () => {
    assert.equal(await driver.hasAny(""), false);
    await driver.writeSmall("object", "x");
    assert.equal(await driver.hasAny(""), true);
  });
});
