import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import {
  ABSENT_DIGEST,
  OCI_EMPTY,
  OCI_MANIFEST,
  blob,
  descriptorOf,
  errorCode,
  imageManifest,
  pushBlob,
  pushImage,
  pushManifest,
} from "./oci-fixtures.js";

describe("deleting content", () => {
  let app: HostedApp;
  before(async () => {
    app = await startHostedApp();
  });
  after(() => app.close());

  const tagsOf = async (name: string) => (await app.request().get(`/v2/${name}/tags/list`).expect(200)).body.tags as string[];

  it("deletes a manifest by digest with 202; it and every tag pointing at it are then 404", async () => {
    const name = "manage/by-digest";
    const doomed = await pushImage(app, name, "doomed");
    await pushManifest(app, name, "alias", doomed.manifest);
    await pushImage(app, name, "survivor");
    await app.request().delete(`/v2/${name}/manifests/${doomed.manifest.digest}`).expect(202);
    for (const reference of [doomed.manifest.digest, "doomed", "alias"]) {
      const res = await app.request().get(`/v2/${name}/manifests/${reference}`).expect(404);
      assert.equal(errorCode(res), "MANIFEST_UNKNOWN");
    }
    assert.deepEqual(await tagsOf(name), ["survivor"]);
    await app.request().get(`/v2/${name}/manifests/survivor`).expect(200);
  });

  it("answers deleting an unknown manifest with 404 MANIFEST_UNKNOWN", async () => {
    await pushImage(app, "manage/unknown", "v1");
    for (const reference of [ABSENT_DIGEST, "no-such-tag"]) {
      const res = await app.request().delete(`/v2/manage/unknown/manifests/${reference}`).expect(404);
      assert.equal(errorCode(res), "MANIFEST_UNKNOWN");
    }
  });

  it("deletes a tag with 202, leaving the manifest and its other tags", async () => {
    const name = "manage/by-tag";
    const image = await pushImage(app, name, "tagtest0");
    await pushManifest(app, name, "keep", image.manifest);
    const before = (await tagsOf(name)).length;
    await app.request().delete(`/v2/${name}/manifests/tagtest0`).expect(202);
    await app.request().get(`/v2/${name}/manifests/tagtest0`).expect(404);
    await app.request().get(`/v2/${name}/manifests/${image.manifest.digest}`).expect(200);
    const after = await tagsOf(name);
    assert.deepEqual(after, ["keep"]);
    assert.ok(after.length < before);
  });

  it("removes a deleted manifest from its subject's referrers", async () => {
    const name = "manage/referrers";
    const subject = await pushImage(app, name, "subject");
    const empty = blob("{}");
    const signature = blob("signature bytes");
    await pushBlob(app, name, empty);
    await pushBlob(app, name, signature);
    const referrer = imageManifest(empty, [signature], {
      artifactType: "application/vnd.example.signature",
      configMediaType: OCI_EMPTY,
      subject: descriptorOf(subject.manifest, OCI_MANIFEST),
    });
    await pushManifest(app, name, referrer.digest, referrer);
    const listed = await app.request().get(`/v2/${name}/referrers/${subject.manifest.digest}`).expect(200);
    assert.equal(listed.body.manifests.length, 1);
    await app.request().delete(`/v2/${name}/manifests/${referrer.digest}`).expect(202);
    const res = await app.request().get(`/v2/${name}/referrers/${subject.manifest.digest}`).expect(200);
    assert.deepEqual(res.body.manifests, []);
  });

  it("deletes a manifest from one repository only", async () => {
    const image = await pushImage(app, "manage/first", "v1", { layers: [blob("shared by two repositories")] });
    for (const content of [image.config, ...image.layers]) await pushBlob(app, "manage/second", content);
    await pushManifest(app, "manage/second", "v1", image.manifest);
    await app.request().delete(`/v2/manage/first/manifests/${image.manifest.digest}`).expect(202);
    await app.request().get(`/v2/manage/second/manifests/v1`).expect(200);
    await app.request().get(`/v2/manage/second/blobs/${image.layers[0].digest}`).expect(200);
  });

  it("accepts a manifest pushed again after it was deleted", async () => {
    const image = await pushImage(app, "manage/again", "v1");
    await app.request().delete(`/v2/manage/again/manifests/${image.manifest.digest}`).expect(202);
    await pushManifest(app, "manage/again", "v1", image.manifest);
    await app.request().get("/v2/manage/again/manifests/v1").expect(200);
  });

  it("deletes a blob with 202; it is then 404 on GET, HEAD and a second DELETE", async () => {
    const content = blob("a blob to delete");
    await pushBlob(app, "manage/blob", content);
    await app.request().delete(`/v2/manage/blob/blobs/${content.digest}`).expect(202);
    await app.request().get(`/v2/manage/blob/blobs/${content.digest}`).expect(404);
    await app.request().head(`/v2/manage/blob/blobs/${content.digest}`).expect(404);
    const again = await app.request().delete(`/v2/manage/blob/blobs/${content.digest}`).expect(404);
    assert.equal(errorCode(again), "BLOB_UNKNOWN");
  });

  it("deletes a blob from one repository only", async () => {
    const content = blob("a blob two repositories hold");
    await pushBlob(app, "manage/blob-a", content);
    await pushBlob(app, "manage/blob-b", content);
    await app.request().delete(`/v2/manage/blob-a/blobs/${content.digest}`).expect(202);
    await app.request().get(`/v2/manage/blob-b/blobs/${content.digest}`).expect(200);
  });

  it("keeps a repository while it holds blobs, and forgets it once its last manifest and blob are deleted", async () => {
    const name = "manage/lifecycle";
    const image = await pushImage(app, name, "only");
    await app.request().delete(`/v2/${name}/manifests/only`).expect(202);
    await app.request().delete(`/v2/${name}/manifests/${image.manifest.digest}`).expect(202);
    assert.deepEqual(await tagsOf(name), []);
    assert.ok((await app.request().get("/v2/_catalog").expect(200)).body.repositories.includes(name));
    for (const content of [image.config, ...image.layers]) await app.request().delete(`/v2/${name}/blobs/${content.digest}`).expect(202);
    const res = await app.request().get(`/v2/${name}/tags/list`).expect(404);
    assert.equal(errorCode(res), "NAME_UNKNOWN");
    assert.ok(!(await app.request().get("/v2/_catalog").expect(200)).body.repositories.includes(name));
  });
});
