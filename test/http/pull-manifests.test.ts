import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import {
  ABSENT_DIGEST,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_INDEX,
  OCI_MANIFEST,
  errorCode,
  indexManifest,
  pushImage,
  pushManifest,
  putManifest,
  rawBytes,
  type Manifest,
} from "./oci-fixtures.js";

describe("pulling manifests", () => {
  let app: HostedApp;
  const pushed: Record<string, Manifest> = {};

  before(async () => {
    app = await startHostedApp();
    pushed.oci = (await pushImage(app, "pull/manifests", "oci")).manifest;
    pushed.docker = (await pushImage(app, "pull/manifests", "docker", { mediaType: DOCKER_MANIFEST })).manifest;
    const arm = (await pushImage(app, "pull/manifests", "oci-arm")).manifest;
    pushed.index = indexManifest([pushed.oci, arm]);
    await pushManifest(app, "pull/manifests", "index", pushed.index);
    const dockerArm = (await pushImage(app, "pull/manifests", "docker-arm", { mediaType: DOCKER_MANIFEST })).manifest;
    pushed.list = indexManifest([pushed.docker, dockerArm], { mediaType: DOCKER_MANIFEST_LIST });
    await pushManifest(app, "pull/manifests", "list", pushed.list);
  });
  after(() => app.close());

  const kinds: [string, string, string][] = [
    ["an OCI image manifest", "oci", OCI_MANIFEST],
    ["a Docker schema2 manifest", "docker", DOCKER_MANIFEST],
    ["an OCI image index", "index", OCI_INDEX],
    ["a Docker manifest list", "list", DOCKER_MANIFEST_LIST],
  ];
  for (const [what, tag, mediaType] of kinds) {
    it(`serves ${what} by tag and by digest byte for byte, with its Content-Type, Content-Length and Docker-Content-Digest`, async () => {
      const expected = pushed[tag];
      for (const reference of [tag, expected.digest]) {
        const res = await app.request().get(`/v2/pull/manifests/manifests/${reference}`).buffer(true).parse(rawBytes).expect(200);
        assert.ok(expected.bytes.equals(res.body as Buffer), `body of ${reference} differs`);
        assert.equal(res.headers["content-type"], mediaType);
        assert.equal(res.headers["content-length"], String(expected.bytes.length));
        assert.equal(res.headers["docker-content-digest"], expected.digest);
      }
    });

    it(`answers HEAD for ${what} with the GET headers and no body`, async () => {
      const expected = pushed[tag];
      for (const reference of [tag, expected.digest]) {
        const res = await app.request().head(`/v2/pull/manifests/manifests/${reference}`).expect(200);
        assert.equal(res.headers["content-type"], mediaType);
        assert.equal(res.headers["content-length"], String(expected.bytes.length));
        assert.equal(res.headers["docker-content-digest"], expected.digest);
        assert.equal(res.text, undefined);
      }
    });
  }

  it("serves a manifest whatever the client's Accept header says (hosted content is not converted)", async () => {
    const res = await app.request().get("/v2/pull/manifests/manifests/docker").set("Accept", OCI_MANIFEST).expect(200);
    assert.equal(res.headers["content-type"], DOCKER_MANIFEST);
  });

  it("answers 404 MANIFEST_UNKNOWN for an unknown tag or digest, on GET and HEAD", async () => {
    for (const reference of ["absent", ABSENT_DIGEST]) {
      const res = await app.request().get(`/v2/pull/manifests/manifests/${reference}`).expect(404);
      assert.equal(errorCode(res), "MANIFEST_UNKNOWN");
      await app.request().head(`/v2/pull/manifests/manifests/${reference}`).expect(404);
    }
  });

  it("answers 404 for a repository that does not exist", async () => {
    const res = await app.request().get("/v2/never/pushed/manifests/latest").expect(404);
    assert.equal(errorCode(res), "MANIFEST_UNKNOWN");
  });

  it("does not serve a manifest pushed to another repository", async () => {
    await app.request().get(`/v2/pull/other/manifests/${pushed.oci.digest}`).expect(404);
  });

  it("does not serve a layer through the manifests endpoint", async () => {
    const image = await pushImage(app, "pull/layer-as-manifest", "v1");
    await app.request().get(`/v2/pull/layer-as-manifest/manifests/${image.layers[0].digest}`).expect(404);
  });

  it("serves a manifest pushed under a sha512 digest by that digest", async () => {
    const image = await pushImage(app, "pull/sha512", "v1");
    const digest = `sha512:${createHash("sha512").update(image.manifest.bytes).digest("hex")}`;
    const put = await putManifest(app, "pull/sha512", digest, image.manifest.bytes, OCI_MANIFEST).expect(201);
    assert.equal(put.headers["docker-content-digest"], digest);
    const res = await app.request().get(`/v2/pull/sha512/manifests/${digest}`).expect(200);
    assert.equal(res.headers["docker-content-digest"], digest);
  });

  it("follows a tag that was moved to another manifest", async () => {
    const first = await pushImage(app, "pull/moving", "stable");
    const second = await pushImage(app, "pull/moving", "stable");
    const res = await app.request().head("/v2/pull/moving/manifests/stable").expect(200);
    assert.equal(res.headers["docker-content-digest"], second.manifest.digest);
    await app.request().head(`/v2/pull/moving/manifests/${first.manifest.digest}`).expect(200);
  });
});
