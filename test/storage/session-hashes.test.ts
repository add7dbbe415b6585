import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { ProcessSessionHashes, SavedSessionHashes } from "../../server/storage/session-hashes.js";

const chunks = [randomBytes(1000), randomBytes(70_000), randomBytes(3)];
const all = Buffer.concat(chunks);

describe("session hashes", () => {
  it("saved in the record: any process resumes a session's hash from its record, sessions interleaved on one hasher", async () => {
    const records = new Map<string, { size: number; sha256?: string }>();
    for (const id of ["s1", "s2"]) records.set(id, { size: 0, sha256: await new SavedSessionHashes().start() });
    for (const chunk of chunks) {
      // Each chunk of each session taken by a fresh process, the two sessions interleaved.
      const process = new SavedSessionHashes();
      const taken = await Promise.all(["s1", "s2"].map(async (id) => ({ id, hash: (await process.take(id, records.get(id)!))! })));
      for (const { hash } of taken) hash.update(chunk);
      for (const { id, hash } of taken) records.set(id, { size: records.get(id)!.size + chunk.length, sha256: process.keep(id, hash) });
    }
    for (const id of ["s1", "s2"]) {
      const hash = await new SavedSessionHashes().take(id, records.get(id)!);
      assert.ok(hash?.digest().equals(Digest.of("sha256", all)), id);
    }
    assert.equal(await new SavedSessionHashes().take("s3", {}), undefined, "a record without a state has no hash");
  });

  it("kept in this process: resumes a hash that covers the record's size, and has none after a chunk taken and not kept", async () => {
    const hashes = new ProcessSessionHashes();
    assert.equal(await hashes.start("s1"), undefined, "nothing for the record");
    let size = 0;
    for (const chunk of chunks) {
      const hash = (await hashes.take("s1", { size }))!;
      hash.update(chunk);
      size += chunk.length;
      hashes.keep("s1", hash, size);
    }
    assert.equal(await hashes.take("s1", { size: size + 1 }), undefined, "a record ahead of the hash (another process stored a chunk)");
    await hashes.start("s2");
    const hash = (await hashes.take("s2", { size: 0 }))!;
    hash.update(all);
    hashes.keep("s2", hash, all.length);
    assert.ok((await hashes.take("s2", { size: all.length }))?.digest().equals(Digest.of("sha256", all)));
    assert.equal(await hashes.take("s2", { size: all.length }), undefined, "taken and not kept");
  });
});
