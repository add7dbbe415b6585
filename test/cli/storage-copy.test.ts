import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { stringify as toYaml } from "yaml";
import { Digest } from "../../server/reference/digest.js";
import { RepositoryMetadata } from "../../server/storage/repository-metadata.js";
import { openStorage } from "../../server/storage/open-storage.js";
import { openFilesystemStorage, type Storage } from "../../server/storage/storage.js";
import { storageSchema } from "../../config/storage-schema.js";
import { createBucket, s3StorageConfig, swiftS3 } from "../support/swift-s3.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { lines, runBerth } from "./cli-fixture.js";

const MiB = 1024 * 1024;

async function contents(storage: Storage): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for await (const object of storage.driver.walk("")) {
    if (object.path === "_probe") continue;
    found.set(object.path, Digest.of("sha256", (await storage.driver.readSmall(object.path))!).toString());
  }
  return found;
}

describe("berth storage copy", () => {
  let work: TempDir;
  let configFile: string;
  let bucket: string;
  const layer = randomBytes(12 * MiB + 5);
  const config = Buffer.from('{"architecture":"amd64"}');

  before(async () => {
    work = await makeTempDir("storage-copy");
    const s3 = await swiftS3();
    bucket = await createBucket(s3);
    configFile = join(work.path, "berth.yaml");
    const { bucket: _unused, ...settings } = s3StorageConfig(s3, bucket, { partSize: "5MiB" });
    await writeFile(configFile, toYaml({ storage: { s3: settings } }));
    const source = await openFilesystemStorage(join(work.path, "source"));
    const metadata = new RepositoryMetadata(source.driver);
    for (const blob of [layer, config]) {
      const { digest } = await source.blobs.ingest(Readable.from([blob]));
      await metadata.linkBlob("team/app", digest);
    }
    const manifest = await source.blobs.ingestBuffer(Buffer.from('{"schemaVersion":2}'));
    await metadata.linkManifest("team/app", manifest, { mediaType: "application/vnd.oci.image.manifest.v1+json", size: 19 });
    await metadata.setTag("team/app", "v1", manifest);
    await source.close();
  });
  after(() => work.remove());

  it("copies a filesystem store into a bucket and back, every object identical, and berth's store reads it", async () => {
    const into = await runBerth(["storage", "copy", "--from", join(work.path, "source"), "--to", `s3://${bucket}/copied`, "--config", configFile]);
    assert.equal(into.code, 0, into.stderr);
    assert.match(into.stdout, /^copied 7 objects \(12\.\d+ MiB\); 0 already there; 0 blobs that do not hash to their names skipped\n$/);
    const back = await runBerth(["storage", "copy", "--from", `s3://${bucket}/copied/`, "--to", join(work.path, "back"), "--config", configFile]);
    assert.equal(back.code, 0, back.stderr);

    const source = await openFilesystemStorage(join(work.path, "source"));
    const returned = await openFilesystemStorage(join(work.path, "back"));
    const onS3 = await openStorage(storageSchema.parse({ driver: "s3", root: join(work.path, "s3-root"), s3: s3StorageConfig(await swiftS3(), bucket, { prefix: "copied/" }) }));
    try {
      const expected = await contents(source);
      assert.equal(expected.size, 7);
      assert.deepEqual(await contents(onS3), expected);
      assert.deepEqual(await contents(returned), expected);
      assert.deepEqual(await new RepositoryMetadata(onS3.driver).tags("team/app"), ["v1"]);
      assert.equal(await onS3.blobs.size(Digest.of("sha256", layer)), layer.length);
    } finally {
      await Promise.all([source.close(), returned.close(), onS3.close()]);
    }

    const again = await runBerth(["storage", "copy", "--from", join(work.path, "source"), "--to", `s3://${bucket}/copied`, "--config", configFile]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^copied 0 objects \(0 B\); 7 already there;/, "a second copy only checks");
  });

  it("skips a blob that does not hash to its name, and fails saying so", async () => {
    const corrupt = Digest.of("sha256", Buffer.from("what it should hold"));
    const dir = join(work.path, "source", "blobs", "sha256", corrupt.hex.slice(0, 2));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, corrupt.hex), "something else");
    const result = await runBerth(["storage", "copy", "--from", join(work.path, "source"), "--to", join(work.path, "corrupt-copy")]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /1 blobs that do not hash to their names skipped: blobs\/sha256\//);
    assert.deepEqual(lines(result.stderr).slice(-1), ["berth storage: 1 blobs of the source do not hash to their names and were not copied"]);
    const copy = await openFilesystemStorage(join(work.path, "corrupt-copy"));
    try {
      assert.equal(await copy.blobs.size(corrupt), undefined);
      assert.equal(await copy.blobs.size(Digest.of("sha256", layer)), layer.length);
    } finally {
      await copy.close();
    }
  });
});
