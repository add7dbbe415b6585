import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import { ABSENT_DIGEST, blob, errorCode, pushImage, putManifest, uniqueConfig, imageManifest, pushBlob } from "./oci-fixtures.js";

describe("repository names", () => {
  let app: HostedApp;
  before(async () => {
    app = await startHostedApp();
  });
  after(() => app.close());

  it("serves nested repositories (a/b/c) on every endpoint, with nested Locations", async () => {
    const image = await pushImage(app, "a/b/c", "v1");
    await app.request().get("/v2/a/b/c/manifests/v1").expect(200);
    await app.request().get(`/v2/a/b/c/blobs/${image.layers[0].digest}`).expect(200);
    const tags = await app.request().get("/v2/a/b/c/tags/list").expect(200);
    assert.deepEqual(tags.body, { name: "a/b/c", tags: ["v1"] });
    const upload = await app.request().post("/v2/a/b/c/blobs/uploads/").expect(202);
    assert.match(upload.headers.location, /^\/v2\/a\/b\/c\/blobs\/uploads\/[0-9a-f-]{36}$/);
    await app.request().get(`/v2/a/b/c/referrers/${image.manifest.digest}`).expect(200);
  });

  it("keeps a parent and its nested child repository apart", async () => {
    await pushImage(app, "parent", "p");
    await pushImage(app, "parent/child", "c");
    assert.deepEqual((await app.request().get("/v2/parent/tags/list").expect(200)).body.tags, ["p"]);
    assert.deepEqual((await app.request().get("/v2/parent/child/tags/list").expect(200)).body.tags, ["c"]);
  });

  it("accepts every separator the name grammar allows and names of exactly 255 characters", async () => {
    const names = ["x.y/z_w/u__v/s-t/q---r/0", `${"n".repeat(127)}/${"m".repeat(127)}`];
    assert.equal(names[1].length, 255);
    for (const name of names) {
      await pushImage(app, name, "ok");
      await app.request().get(`/v2/${name}/manifests/ok`).expect(200);
    }
  });

  const invalidNames: [string, string][] = [
    ["uppercase letters", "Library/Ubuntu"],
    ["a `..` component", "a/../b"],
    ["a percent-encoded `..` component", "a/%2e%2e/b"],
    ["a percent-encoded `..` as the whole name", "%2E%2E"],
    ["a trailing slash", "a/b/"],
    ["an empty component", "a//b"],
    ["a leading separator", "-a/b"],
    ["a trailing separator", "a_/b"],
    ["a dot component", "a/./b"],
    ["256 characters", `${"n".repeat(128)}/${"m".repeat(127)}`],
    ["malformed percent-encoding", "a/%zz"],
    ["an encoded NUL", "a%00b"],
  ];
  for (const [why, name] of invalidNames) {
    it(`refuses a name with ${why} with 400 NAME_INVALID on every endpoint`, async () => {
      const requests = {
        "GET manifest": app.request().get(`/v2/${name}/manifests/latest`),
        "PUT manifest": app.request().put(`/v2/${name}/manifests/latest`).send("{}"),
        "GET blob": app.request().get(`/v2/${name}/blobs/${ABSENT_DIGEST}`),
        "POST upload": app.request().post(`/v2/${name}/blobs/uploads/`),
        "GET tags": app.request().get(`/v2/${name}/tags/list`),
        "GET referrers": app.request().get(`/v2/${name}/referrers/${ABSENT_DIGEST}`),
      };
      for (const [what, request] of Object.entries(requests)) {
        const res = await request;
        assert.equal(res.status, 400, `${what}: ${res.text}`);
        assert.equal(errorCode(res), "NAME_INVALID");
      }
    });
  }

  it("refuses to mount from a repository with an invalid name", async () => {
    const res = await app.request().post(`/v2/mount/target/blobs/uploads/?mount=${ABSENT_DIGEST}&from=Bad/Name`).expect(400);
    assert.equal(errorCode(res), "NAME_INVALID");
  });

  it("opens no session and creates nothing for a refused name", async () => {
    const sessions = (await app.storage.uploads.ids()).length;
    await app.request().post("/v2/a/%2e%2e/%2e%2e/escape/blobs/uploads/").expect(400);
    await app.request().post(`/v2/a/%2e%2e/%2e%2e/escape/blobs/uploads/?digest=${blob("x").digest}`).send("x").expect(400);
    assert.equal((await app.storage.uploads.ids()).length, sessions);
    const everything = await app.storedPaths();
    assert.deepEqual(everything.filter((path) => path.includes("escape")), []);
  });
});

describe("tags and digests in paths", () => {
  let app: HostedApp;
  before(async () => {
    app = await startHostedApp();
    await pushImage(app, "refs", "present");
  });
  after(() => app.close());

  it("answers GET and HEAD of a reference that is neither tag nor digest with 404 MANIFEST_UNKNOWN", async () => {
    for (const reference of [".INVALID_MANIFEST_NAME", "-dash-first", "t".repeat(129), "sha256:totallywrong", `sha384:${"a".repeat(96)}`]) {
      const res = await app.request().get(`/v2/refs/manifests/${reference}`);
      assert.equal(res.status, 404, reference);
      assert.equal(errorCode(res), "MANIFEST_UNKNOWN");
      await app.request().head(`/v2/refs/manifests/${reference}`).expect(404);
    }
  });

  it("judges a malformed percent-encoding in the reference, digest or upload id by that part's own rules", async () => {
    assert.equal(errorCode(await app.request().get("/v2/refs/manifests/%E0%A4%A").expect(404)), "MANIFEST_UNKNOWN");
    assert.equal(errorCode(await putManifest(app, "refs", "%E0%A4%A", "{}", "application/vnd.oci.image.manifest.v1+json").expect(400)), "MANIFEST_INVALID");
    assert.equal(errorCode(await app.request().get("/v2/refs/blobs/sha256:%zz").expect(400)), "DIGEST_INVALID");
    assert.equal(errorCode(await app.request().get("/v2/refs/blobs/uploads/%zz").expect(404)), "BLOB_UPLOAD_UNKNOWN");
  });

  it("answers DELETE of an impossible reference with 404 MANIFEST_UNKNOWN", async () => {
    const res = await app.request().delete("/v2/refs/manifests/.INVALID_MANIFEST_NAME").expect(404);
    assert.equal(errorCode(res), "MANIFEST_UNKNOWN");
  });

  it("accepts tags of 128 characters that start with an underscore or digit and use . and -", async () => {
    const config = uniqueConfig();
    const layer = blob("tag grammar layer");
    await pushBlob(app, "refs", config);
    await pushBlob(app, "refs", layer);
    const image = imageManifest(config, [layer]);
    for (const tag of ["_underscore", "0.1.2-rc.1", "A".repeat(128), "MiXeD_case-1.0"]) {
      await putManifest(app, "refs", tag, image.bytes, image.mediaType).expect(201);
      await app.request().head(`/v2/refs/manifests/${tag}`).expect(200);
    }
  });

  it("refuses to push to an invalid tag with 400 MANIFEST_INVALID", async () => {
    for (const reference of [".dot-first", "t".repeat(129), "has%20space"]) {
      const res = await putManifest(app, "refs", reference, "{}", "application/vnd.oci.image.manifest.v1+json");
      assert.equal(res.status, 400, reference);
      assert.equal(errorCode(res), "MANIFEST_INVALID");
    }
  });

  it("refuses to push to a malformed or unverifiable digest with 400 DIGEST_INVALID", async () => {
    for (const reference of ["sha256:totallywrong", `sha256:${"A".repeat(64)}`, `sha256:${"a".repeat(63)}`, `md5:${"a".repeat(32)}`]) {
      const res = await putManifest(app, "refs", reference, "blablabla", "application/vnd.oci.image.manifest.v1+json");
      assert.equal(res.status, 400, reference);
      assert.equal(errorCode(res), "DIGEST_INVALID");
    }
  });

  it("refuses a malformed blob digest with 400 DIGEST_INVALID", async () => {
    for (const digest of ["sha256:xyz", `sha256:${"A".repeat(64)}`, `sha1:${"a".repeat(40)}`, "nocolon", `constructor:${"a".repeat(64)}`]) {
      const res = await app.request().get(`/v2/refs/blobs/${digest}`);
      assert.equal(res.status, 400, digest);
      assert.equal(errorCode(res), "DIGEST_INVALID");
    }
  });
});
