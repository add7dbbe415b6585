import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { RegistryError } from "../../server/registry/errors.js";
import { HostedRegistry } from "../../server/registry/hosted-registry.js";
import { OCI_MANIFEST } from "../../server/registry/media-types.js";
import { openRepository } from "../../server/registry/registry.js";
import { openFilesystemStorage, type Storage } from "../../server/storage/storage.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

const isCode = (code: string) => (err: unknown) => err instanceof RegistryError && err.code === code;

describe("HostedRepository", () => {
  const dirs: TempDir[] = [];
  let storage: Storage;
  let registry: HostedRegistry;

  const openStorage = async () => {
    const dir = await makeTempDir("hosted");
    dirs.push(dir);
    return openFilesystemStorage(dir.path);
  };
  /** Uploads content to a repository the way the HTTP layer does. */
  const upload = async (into: HostedRegistry, name: string, bytes: Buffer) => {
    const repository = await openRepository(into, { name });
    const session = await repository.startUpload();
    await repository.completeUpload(session.id, Digest.of("sha256", bytes), Readable.from([bytes]));
    return Digest.of("sha256", bytes);
  };

  beforeEach(async () => {
    storage = await openStorage();
    registry = new HostedRegistry(storage);
  });
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await dir.remove();
  });

  describe("mountBlob", () => {
    it("links a blob the source repository holds", async () => {
      const digest = await upload(registry, "source", Buffer.from("shared layer"));
      const target = await openRepository(registry, { name: "target" });
      assert.equal(await target.mountBlob(digest, await openRepository(registry, { name: "source" })), true);
      assert.equal((await target.statBlob(digest)).size, "shared layer".length);
    });

    it("refuses when the source does not hold the blob", async () => {
      const target = await openRepository(registry, { name: "target" });
      const digest = Digest.of("sha256", "absent");
      assert.equal(await target.mountBlob(digest, await openRepository(registry, { name: "source" })), false);
      await assert.rejects(target.statBlob(digest), isCode("BLOB_UNKNOWN"));
    });

    it("refuses when the source knows the blob but its bytes are not in this store", async () => {
      // A source backed by other storage stands for a mirror that only knows of the blob upstream.
      const elsewhere = new HostedRegistry(await openStorage());
      const digest = await upload(elsewhere, "source", Buffer.from("remote-only layer"));
      const target = await openRepository(registry, { name: "target" });
      assert.equal(await target.mountBlob(digest, await openRepository(elsewhere, { name: "source" })), false);
      assert.equal(await storage.metadata.hasBlob("target", digest), false);
    });
  });

  it("drops an upload whose content fails verification, as Distribution does", async () => {
    const repository = await openRepository(registry, { name: "team/app" });
    const session = await repository.startUpload();
    await assert.rejects(
      repository.completeUpload(session.id, Digest.of("sha256", "claimed"), Readable.from([Buffer.from("sent")])),
      isCode("DIGEST_INVALID"),
    );
    await assert.rejects(repository.upload(session.id), isCode("BLOB_UPLOAD_UNKNOWN"));
    assert.deepEqual(await storage.uploads.ids(), []);
  });

  it("keeps an upload whose final chunk did not continue it, for the client to resume", async () => {
    const repository = await openRepository(registry, { name: "team/app" });
    const session = await repository.startUpload();
    await repository.appendUpload(session.id, 0, Readable.from([Buffer.from("abc")]));
    await assert.rejects(repository.appendUpload(session.id, 0, Readable.from([Buffer.from("abc")])), (err: unknown) => {
      assert.ok(isCode("RANGE_INVALID")(err));
      assert.equal((err as RegistryError).status, 416);
      return true;
    });
    assert.equal((await repository.upload(session.id)).size, 3);
  });

  it("records a referrer typed by its config when its artifactType is empty", async () => {
    const config = await upload(registry, "team/app", Buffer.from("{}"));
    const subject = Digest.of("sha256", "subject manifest");
    const document = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: "",
      config: { mediaType: "application/vnd.example.signature.config", digest: config.toString(), size: 2 },
      layers: [],
      subject: { mediaType: OCI_MANIFEST, digest: subject.toString(), size: 16 },
    };
    const bytes = Buffer.from(JSON.stringify(document));
    const repository = await openRepository(registry, { name: "team/app" });
    const result = await repository.putManifest(undefined, OCI_MANIFEST, bytes);
    assert.equal(result.subject?.toString(), subject.toString());
    assert.deepEqual(await repository.referrers(subject), [
      { mediaType: OCI_MANIFEST, digest: result.digest.toString(), size: bytes.length, artifactType: "application/vnd.example.signature.config" },
    ]);
  });

  it("lists tags only of a repository that exists", async () => {
    await assert.rejects((await openRepository(registry, { name: "never/pushed" })).tags(), isCode("NAME_UNKNOWN"));
    await upload(registry, "blobs/only", Buffer.from("layer"));
    assert.deepEqual(await (await openRepository(registry, { name: "blobs/only" })).tags(), []);
  });
});
