import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { LocalTails } from "../../server/storage/s3/local-tails.js";
import { Spool, type SpoolFile } from "../../server/storage/s3/spool.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

describe("local copies of an S3 upload session's tail objects", () => {
  let dir: TempDir;
  let spool: Spool;
  const released = new Set<string>();
  const file = async (): Promise<SpoolFile> => {
    const created = await spool.create("uploads");
    return {
      ...created,
      release: async () => {
        released.add(created.path);
        await created.release();
      },
    };
  };

  beforeEach(async () => {
    dir = await makeTempDir("local-tails");
    spool = new Spool(dir.path, 1024 * 1024);
    released.clear();
  });
  afterEach(() => dir.remove());

  it("stands in for a tail only while the record names the very bytes this process wrote there (same sha256)", async () => {
    const tails = new LocalTails(() => false);
    const copy = await file();
    tails.keep("s1", { path: "uploads/s1/tail/0", sha256: "aaaa" }, copy);
    assert.equal(tails.find("s1", { path: "uploads/s1/tail/0", sha256: "aaaa" }), copy.path);
    // Another replica wrote other bytes at the same offset, and the record names those.
    assert.equal(tails.find("s1", { path: "uploads/s1/tail/0", sha256: "bbbb" }), undefined);
    await tails.retain("s1", [{ path: "uploads/s1/tail/0", sha256: "bbbb" }]);
    assert.ok(released.has(copy.path), "a copy the record no longer names is let go");
    await tails.close();
  });

  it("lets go of the copies of sessions unused for a while, but not of one a task of this process holds", async () => {
    const busy = new Set(["held"]);
    const tails = new LocalTails((id) => busy.has(id), 20);
    const idle = await file();
    const held = await file();
    tails.keep("idle", { path: "uploads/idle/tail/0", sha256: "aaaa" }, idle);
    tails.keep("held", { path: "uploads/held/tail/0", sha256: "bbbb" }, held);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const fresh = await file();
    tails.keep("new", { path: "uploads/new/tail/0", sha256: "cccc" }, fresh);
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(released.has(idle.path));
    assert.ok(!released.has(held.path));
    assert.ok(!released.has(fresh.path));
    assert.equal(tails.find("held", { path: "uploads/held/tail/0", sha256: "bbbb" }), held.path);
    await tails.close();
  });
});
