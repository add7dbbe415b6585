import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import { ABSENT_DIGEST, errorCode, pushImage } from "./oci-fixtures.js";

const API_VERSION = "docker-distribution-api-version";

describe("GET /v2/ and the error envelope", () => {
  let app: HostedApp;
  before(async () => {
    app = await startHostedApp();
  });
  after(() => app.close());

  it("answers GET /v2/ with 200, a JSON body and Docker-Distribution-API-Version registry/2.0", async () => {
    const res = await app.request().get("/v2/").expect(200);
    assert.equal(res.headers[API_VERSION], "registry/2.0");
    assert.match(res.headers["content-type"], /^application\/json/);
    assert.deepEqual(res.body, {});
  });

  it("answers HEAD /v2/ and GET /v2 without the trailing slash with 200", async () => {
    await app.request().head("/v2/").expect(200);
    const res = await app.request().get("/v2").expect(200);
    assert.equal(res.headers[API_VERSION], "registry/2.0");
  });

  it("sends Docker-Distribution-API-Version on every /v2 response, errors included", async () => {
    await pushImage(app, "headers/everywhere", "v1");
    const requests = [
      app.request().get("/v2/headers/everywhere/manifests/v1"),
      app.request().head("/v2/headers/everywhere/manifests/v1"),
      app.request().get("/v2/headers/everywhere/manifests/absent"),
      app.request().get(`/v2/headers/everywhere/blobs/${ABSENT_DIGEST}`),
      app.request().get("/v2/headers/everywhere/tags/list"),
      app.request().get("/v2/_catalog"),
      app.request().post("/v2/headers/everywhere/blobs/uploads/"),
      app.request().get("/v2/Invalid/tags/list"),
      app.request().options("/v2/headers/everywhere/tags/list"),
      app.request().get("/v2/headers/everywhere/nothing-here"),
    ];
    for (const res of await Promise.all(requests)) {
      assert.equal(res.headers[API_VERSION], "registry/2.0", `${res.status} ${res.text}`);
    }
  });

  it("reports failures as {errors:[{code,message,detail}]} JSON with a spec error code", async () => {
    const res = await app.request().get(`/v2/errors/shape/blobs/${ABSENT_DIGEST}`).expect(404);
    assert.match(res.headers["content-type"], /^application\/json/);
    assert.equal(res.body.errors.length, 1);
    const [error] = res.body.errors;
    assert.equal(error.code, "BLOB_UNKNOWN");
    assert.equal(typeof error.message, "string");
    assert.deepEqual(error.detail, { digest: ABSENT_DIGEST });
  });

  it("sends no body but the error's Content-Length on a failed HEAD", async () => {
    const res = await app.request().head(`/v2/errors/head/blobs/${ABSENT_DIGEST}`).expect(404);
    assert.equal(res.text, undefined);
    assert.ok(Number(res.headers["content-length"]) > 0);
  });

  it("answers an unsupported method with 405 UNSUPPORTED and an Allow header", async () => {
    const patch = await app.request().patch("/v2/methods/repo/manifests/latest").expect(405);
    assert.equal(errorCode(patch), "UNSUPPORTED");
    assert.equal(patch.headers.allow, "GET, HEAD, PUT, DELETE");

    const post = await app.request().post("/v2/methods/repo/tags/list").expect(405);
    assert.equal(post.headers.allow, "GET, HEAD");

    const put = await app.request().put(`/v2/methods/repo/blobs/${ABSENT_DIGEST}`).expect(405);
    assert.equal(put.headers.allow, "GET, HEAD, DELETE");

    const deleteBase = await app.request().delete("/v2/").expect(405);
    assert.equal(errorCode(deleteBase), "UNSUPPORTED");

    const options = await app.request().options("/v2/_catalog").expect(405);
    assert.equal(options.headers.allow, "GET, HEAD");
  });

  it("answers a /v2 path that names no endpoint with 404", async () => {
    for (const path of ["/v2/repo", "/v2/repo/manifests", "/v2/repo/manifests/", "/v2/repo/blobs/", "/v2/repo/tags", "/v2/_catalog/x"]) {
      const res = await app.request().get(path);
      assert.equal(res.status, 404, path);
      assert.equal(errorCode(res), "UNSUPPORTED", path);
    }
  });

  it("answers paths outside /v2 with a 404, keeping /healthz and /readyz", async () => {
    await app.request().get("/v1/_ping").expect(404);
    await app.request().get("/healthz").expect(200);
    await app.request().get("/readyz").expect(200);
  });
});
