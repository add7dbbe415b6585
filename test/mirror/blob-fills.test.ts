import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { it } from "node:test";
import { BlobFills, type BlobFill, type FillHooks } from "../../server/registry/blob-fill.js";
import { Digest } from "../../server/reference/digest.js";
import { openFilesystemStorage } from "../../server/storage/storage.js";
import { makeTempDir } from "../support/temp-dir.js";

it("a client arriving after a fill failed, while it still cleans up, starts a fresh upstream fetch instead of inheriting the failure", async (t) => {
  const dir = await makeTempDir("mirror-blob-fills");
  t.after(() => dir.remove());
  const storage = await openFilesystemStorage(dir.path);
  const fills = new BlobFills(storage.driver, storage.blobs);
  const content = randomBytes(64 * 1024);
  const digest = Digest.of("sha256", content);
  const corrupt = Buffer.from(content);
  corrupt[0] ^= 0xff;

  let fetches = 0;
  let retried: { fill: BlobFill; started: boolean } | undefined;
  const hooks = (bytes: Buffer): FillHooks => ({
    fetch: async () => {
      fetches++;
      return { size: bytes.length, body: Readable.from([bytes]), anonymous: true };
    },
    onVerified: async () => {},
    // Runs after the failure is visible to readers and before the failed fill leaves the list: the window a quick retry lands in.
    onFailed: () => {
      retried = fills.join(digest, hooks(content));
    },
  });

  const failed = fills.join(digest, hooks(corrupt)).fill;
  await failed.finished;
  assert.equal(failed.state, "failed");
  assert.ok(retried, "the retry joined while the failed fill was still listed");
  assert.equal(retried.started, true);
  await retried.fill.finished;

  assert.equal(retried.fill.state, "verified");
  assert.equal(fetches, 2);
  assert.deepEqual(await storage.blobs.read(digest), content);
});
