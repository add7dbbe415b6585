import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import { blob, errorCode, rawBytes, sha256 } from "./oci-fixtures.js";

const UPLOAD_LOCATION = /^\/v2\/push\/mono\/blobs\/uploads\/([0-9a-f-]{36})$/;

describe("pushing a blob monolithically", () => {
  let app: HostedApp;
  before(async () => {
    app = await startHostedApp();
  });
  after(() => app.close());

  const startSession = async (name = "push/mono") => {
    const res = await app.request().post(`/v2/${name}/blobs/uploads/`).expect(202);
    return res.headers.location as string;
  };

  it("opens a session on POST with 202, a Location holding a UUID, Docker-Upload-UUID and Range 0-0", async () => {
    const res = await app.request().post("/v2/push/mono/blobs/uploads/").set("Content-Length", "0").expect(202);
    const match = UPLOAD_LOCATION.exec(res.headers.location);
    assert.ok(match, res.headers.location);
    assert.equal(res.headers["docker-upload-uuid"], match[1]);
    assert.equal(res.headers.range, "0-0");
  });

  it("completes POST then PUT ?digest= with 201, the blob's Location and Docker-Content-Digest, and serves it", async () => {
    const content = blob("monolithic POST then PUT");
    const location = await startSession();
    const res = await app
      .request()
      .put(`${location}?digest=${content.digest}`)
      .set("Content-Type", "application/octet-stream")
      .send(content.bytes)
      .expect(201);
    assert.equal(res.headers.location, `/v2/push/mono/blobs/${content.digest}`);
    assert.equal(res.headers["docker-content-digest"], content.digest);
    const pulled = await app.request().get(res.headers.location).buffer(true).parse(rawBytes).expect(200);
    assert.ok(content.bytes.equals(pulled.body as Buffer));
  });

  it("closes the session once the blob is stored", async () => {
    const content = blob("session closes");
    const location = await startSession();
    await app.request().put(`${location}?digest=${content.digest}`).send(content.bytes).expect(201);
    const res = await app.request().get(location).expect(404);
    assert.equal(errorCode(res), "BLOB_UPLOAD_UNKNOWN");
    const id = location.split("/").pop()!;
    assert.ok(!(await app.storage.uploads.ids()).includes(id));
  });

  it("stores a blob sent in a single POST ?digest= with 201 and its Location", async () => {
    const content = blob("single POST");
    const res = await app
      .request()
      .post(`/v2/push/mono/blobs/uploads/?digest=${content.digest}`)
      .set("Content-Type", "application/octet-stream")
      .send(content.bytes)
      .expect(201);
    assert.equal(res.headers.location, `/v2/push/mono/blobs/${content.digest}`);
    assert.equal(res.headers["docker-content-digest"], content.digest);
    await app.request().head(res.headers.location).expect(200);
  });

  it("refuses a PUT whose content does not hash to ?digest= with 400 DIGEST_INVALID and stores nothing", async () => {
    const claimed = blob("what the client claims");
    const sent = blob("what the client sent");
    const location = await startSession();
    const res = await app.request().put(`${location}?digest=${claimed.digest}`).send(sent.bytes).expect(400);
    assert.equal(errorCode(res), "DIGEST_INVALID");
    await app.request().head(`/v2/push/mono/blobs/${claimed.digest}`).expect(404);
    await app.request().head(`/v2/push/mono/blobs/${sent.digest}`).expect(404);
    assert.equal(await app.storage.blobs.size(Digest.parse(claimed.digest)!), undefined);
    assert.equal(await app.storage.blobs.size(Digest.parse(sent.digest)!), undefined);
    const status = await app.request().get(location).expect(404);
    assert.equal(errorCode(status), "BLOB_UPLOAD_UNKNOWN");
  });

  it("refuses a single POST whose content does not match ?digest= with 400 DIGEST_INVALID, leaving no session", async () => {
    const before = await app.storage.uploads.ids();
    const claimed = blob("claimed in POST");
    const res = await app.request().post(`/v2/push/mono/blobs/uploads/?digest=${claimed.digest}`).send("something else").expect(400);
    assert.equal(errorCode(res), "DIGEST_INVALID");
    await app.request().head(`/v2/push/mono/blobs/${claimed.digest}`).expect(404);
    assert.deepEqual((await app.storage.uploads.ids()).sort(), before.sort());
  });

  it("refuses a malformed ?digest= on POST with 400 DIGEST_INVALID before opening a session", async () => {
    const before = await app.storage.uploads.ids();
    for (const digest of ["sha256:nothex", "md5:abc", ""]) {
      const res = await app.request().post(`/v2/push/mono/blobs/uploads/?digest=${digest}`).send("x").expect(400);
      assert.equal(errorCode(res), "DIGEST_INVALID");
    }
    assert.deepEqual((await app.storage.uploads.ids()).sort(), before.sort());
  });

  it("refuses a PUT without ?digest= with 400 DIGEST_INVALID and keeps the session for a retry", async () => {
    const content = blob("retry with digest");
    const location = await startSession();
    const res = await app.request().put(location).send(content.bytes).expect(400);
    assert.equal(errorCode(res), "DIGEST_INVALID");
    await app.request().get(location).expect(204);
    await app.request().put(`${location}?digest=${content.digest}`).send(content.bytes).expect(201);
  });

  it("stores and serves a sha512 blob under its sha512 digest", async () => {
    const bytes = Buffer.from("a blob addressed by sha512");
    const digest = `sha512:${createHash("sha512").update(bytes).digest("hex")}`;
    const location = await startSession();
    const res = await app.request().put(`${location}?digest=${digest}`).send(bytes).expect(201);
    assert.equal(res.headers["docker-content-digest"], digest);
    const pulled = await app.request().get(`/v2/push/mono/blobs/${digest}`).buffer(true).parse(rawBytes).expect(200);
    assert.ok(bytes.equals(pulled.body as Buffer));
    assert.equal(pulled.headers["docker-content-digest"], digest);
    await app.request().head(`/v2/push/mono/blobs/${sha256(bytes)}`).expect(404);
  });

  it("refuses sha512 content that does not match its sha512 digest", async () => {
    const digest = `sha512:${createHash("sha512").update("other").digest("hex")}`;
    const location = await startSession();
    const res = await app.request().put(`${location}?digest=${digest}`).send("content").expect(400);
    assert.equal(errorCode(res), "DIGEST_INVALID");
  });

  it("accepts an empty blob and a blob pushed twice", async () => {
    for (const content of [blob(""), blob("twice"), blob("twice")]) {
      const location = await startSession();
      await app.request().put(`${location}?digest=${content.digest}`).send(content.bytes).expect(201);
      await app.request().head(`/v2/push/mono/blobs/${content.digest}`).expect(200);
    }
  });

  it("accepts a PUT body sent with chunked transfer encoding", async () => {
    const content = blob("chunked transfer ".repeat(1000));
    const location = await startSession();
    const res = await fetch(`${app.url}${location}?digest=${content.digest}`, {
      method: "PUT",
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(content.bytes.subarray(0, 5000));
          controller.enqueue(content.bytes.subarray(5000));
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    assert.equal(res.status, 201);
    await app.request().head(`/v2/push/mono/blobs/${content.digest}`).expect(200);
  });

  it("answers 404 BLOB_UPLOAD_UNKNOWN for a session that does not exist or belongs to another repository", async () => {
    const content = blob("wrong session");
    const foreign = await startSession("push/other");
    const foreignId = foreign.split("/").pop();
    for (const id of [randomUUID(), "not-a-uuid", foreignId, "..%2F..%2Fetc"]) {
      const res = await app.request().put(`/v2/push/mono/blobs/uploads/${id}?digest=${content.digest}`).send(content.bytes);
      assert.equal(res.status, 404, String(id));
      assert.equal(errorCode(res), "BLOB_UPLOAD_UNKNOWN");
    }
    await app.request().get(foreign).expect(204);
  });
});
