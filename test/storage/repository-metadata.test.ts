import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { RepositoryMetadata } from "../../server/storage/repository-metadata.js";
import { openTestStorage, STORAGE_DRIVERS, type TestStorage } from "../support/storage-drivers.js";

const digestOf = (text: string) => Digest.of("sha256", text);
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

for (const kind of STORAGE_DRIVERS) describe(`RepositoryMetadata (${kind})`, () => {
  let store: TestStorage;
  let metadata: RepositoryMetadata;

  beforeEach(async () => {
    store = await openTestStorage(kind);
    metadata = new RepositoryMetadata(store.storage.driver);
  });
  afterEach(() => store.close());

  it("sets, moves, reads and deletes tags, listing them in byte order", async () => {
    for (const tag of ["v2", "V1", "latest", "1.0", "_x"]) await metadata.setTag("team/app", tag, digestOf(tag));
    await metadata.setTag("team/app", "latest", digestOf("moved"));
    assert.ok((await metadata.tag("team/app", "latest"))?.equals(digestOf("moved")));
    assert.deepEqual(await metadata.tags("team/app"), ["1.0", "V1", "_x", "latest", "v2"]);
    assert.equal(await metadata.deleteTag("team/app", "V1"), true);
    assert.equal(await metadata.deleteTag("team/app", "V1"), false);
    assert.equal(await metadata.tag("team/app", "V1"), undefined);
  });

  it("moves a tag atomically: concurrent readers see one of the digests written, never a torn or missing one", async () => {
    const digests = Array.from({ length: 30 }, (_, i) => digestOf(`image ${i}`));
    await metadata.setTag("team/app", "moving", digests[0]);
    const seen: (Digest | undefined)[] = [];
    await Promise.all([
      ...digests.map((d) => metadata.setTag("team/app", "moving", d)),
      ...digests.map(async () => seen.push(await metadata.tag("team/app", "moving"))),
    ]);
    for (const digest of seen) assert.ok(digest && digests.some((d) => d.equals(digest)), `read ${digest}`);
    assert.deepEqual(await store.leftovers(), []);
  });

  it("links manifests with their media type and size, and unlinks them", async () => {
    const digest = digestOf("manifest");
    await metadata.linkManifest("team/app", digest, { mediaType: OCI_MANIFEST, size: 8 });
    assert.deepEqual(await metadata.manifest("team/app", digest), { mediaType: OCI_MANIFEST, size: 8 });
    assert.deepEqual((await metadata.manifests("team/app")).map(String), [digest.toString()]);
    assert.equal(await metadata.manifest("team/other", digest), undefined);
    await metadata.unlinkManifest("team/app", digest);
    assert.equal(await metadata.manifest("team/app", digest), undefined);
    assert.deepEqual(await metadata.manifests("team/app"), []);
  });

  it("says whether a repository holds any manifest, and not once its only manifest is unlinked", async () => {
    const digest = digestOf("manifest");
    assert.equal(await metadata.hasManifests("team/app"), false);
    await metadata.linkManifest("team/app", digest, { mediaType: OCI_MANIFEST, size: 8 });
    assert.equal(await metadata.hasManifests("team/app"), true);
    assert.equal(await metadata.hasManifests("team/other"), false);
    await metadata.unlinkManifest("team/app", digest);
    if (kind === "filesystem") assert.deepEqual(await readdir(join(store.root, "repositories/team/app/_manifests")), ["sha256"], "the emptied algorithm directory stays behind");
    assert.equal(await metadata.hasManifests("team/app"), false);
  });

  it("links blobs per repository, sha256 and sha512 alike", async () => {
    const blobs = [digestOf("layer"), Digest.of("sha512", "layer")];
    for (const blob of blobs) await metadata.linkBlob("team/app", blob);
    for (const blob of blobs) {
      assert.equal(await metadata.hasBlob("team/app", blob), true);
      assert.equal(await metadata.hasBlob("team/other", blob), false);
    }
    assert.deepEqual((await metadata.blobs("team/app")).map(String).sort(), blobs.map(String).sort());
    await metadata.unlinkBlob("team/app", blobs[0]);
    assert.equal(await metadata.hasBlob("team/app", blobs[0]), false);
  });

  it("considers a repository to exist while it holds a manifest or a blob", async () => {
    assert.equal(await metadata.exists("team/app"), false);
    await metadata.linkBlob("team/app", digestOf("layer"));
    assert.equal(await metadata.exists("team/app"), true);
    await metadata.linkManifest("team/app", digestOf("manifest"), { mediaType: OCI_MANIFEST, size: 1 });
    await metadata.unlinkBlob("team/app", digestOf("layer"));
    assert.equal(await metadata.exists("team/app"), true);
    await metadata.unlinkManifest("team/app", digestOf("manifest"));
    assert.equal(await metadata.exists("team/app"), false);
  });

  it("lists existing repositories, nested ones included, in byte order", async () => {
    for (const name of ["zeta", "team/app", "team", "team/app/sub", "alpha"]) {
      await metadata.linkManifest(name, digestOf(name), { mediaType: OCI_MANIFEST, size: 1 });
    }
    await metadata.linkBlob("blobs-only", digestOf("layer"));
    await metadata.setTag("emptied", "t", digestOf("gone"));
    await metadata.linkManifest("emptied", digestOf("gone"), { mediaType: OCI_MANIFEST, size: 1 });
    await metadata.unlinkManifest("emptied", digestOf("gone"));
    assert.deepEqual(await metadata.repositories(), ["alpha", "blobs-only", "team", "team/app", "team/app/sub", "zeta"]);
  });

  it("keeps repositories under another root apart", async () => {
    const mirrors = new RepositoryMetadata(store.storage.driver, "mirrors/docker.io");
    await mirrors.linkManifest("library/nginx", digestOf("nginx"), { mediaType: OCI_MANIFEST, size: 1 });
    await metadata.linkManifest("team/app", digestOf("app"), { mediaType: OCI_MANIFEST, size: 1 });
    assert.deepEqual(await metadata.repositories(), ["team/app"]);
    assert.deepEqual(await mirrors.repositories(), ["library/nginx"]);
    assert.equal(await metadata.manifest("library/nginx", digestOf("nginx")), undefined);
  });

  it("records referrers per subject, once each, and forgets a removed one", async () => {
    const subject = digestOf("subject");
    const signature = { mediaType: OCI_MANIFEST, digest: digestOf("signature").toString(), size: 10, artifactType: "application/vnd.example.sig", annotations: { a: "b" } };
    const sbom = { mediaType: OCI_MANIFEST, digest: digestOf("sbom").toString(), size: 20, artifactType: "application/spdx+json" };
    await metadata.addReferrer("team/app", subject, signature);
    await metadata.addReferrer("team/app", subject, signature);
    await metadata.addReferrer("team/app", subject, sbom);
    const listed = await metadata.referrers("team/app", subject);
    assert.equal(listed.length, 2);
    assert.deepEqual(listed.find((d) => d.digest === signature.digest), signature);
    assert.deepEqual(await metadata.referrers("team/other", subject), []);
    assert.deepEqual(await metadata.referrers("team/app", digestOf("no referrers")), []);
    await metadata.removeReferrer("team/app", subject, digestOf("signature"));
    assert.deepEqual(await metadata.referrers("team/app", subject), [sbom]);
  });
});
