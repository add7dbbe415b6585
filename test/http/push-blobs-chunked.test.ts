import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { after, before, describe, it } from "node:test";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import { blob, errorCode, rawBytes } from "./oci-fixtures.js";

const NAME = "push/chunked";
const content = blob(randomBytes(3000));
const chunk1 = content.bytes.subarray(0, 1200);
const chunk2 = content.bytes.subarray(1200, 2500);
const chunk3 = content.bytes.subarray(2500);

describe("pushing a blob in chunks", () => {
  let app: HostedApp;
  before(async () => {
    app = await startHostedApp();
  });
  after(() => app.close());

  const startSession = async () => (await app.request().post(`/v2/${NAME}/blobs/uploads/`).set("Content-Length", "0").expect(202)).headers.location as string;
  const patch = (location: string, bytes: Buffer, range?: string) => {
    const request = app.request().patch(location).set("Content-Type", "application/octet-stream");
    if (range !== undefined) request.set("Content-Range", range);
    return request.send(bytes);
  };
  const assertStored = async () => {
    const res = await app.request().get(`/v2/${NAME}/blobs/${content.digest}`).buffer(true).parse(rawBytes).expect(200);
    assert.ok(content.bytes.equals(res.body as Buffer));
  };

  it("accepts in-order chunks with 202, Location, Range 0-<end> and Docker-Upload-UUID, then completes on PUT", async () => {
    const location = await startSession();
    const first = await patch(location, chunk1, "0-1199").expect(202);
    assert.equal(first.headers.range, "0-1199");
    assert.ok(first.headers.location);
    assert.equal(first.headers["docker-upload-uuid"], location.split("/").pop());
    const second = await patch(first.headers.location, chunk2, "1200-2499").expect(202);
    assert.equal(second.headers.range, "0-2499");
    const third = await patch(second.headers.location, chunk3, "2500-2999").expect(202);
    assert.equal(third.headers.range, "0-2999");
    const done = await app.request().put(`${third.headers.location}?digest=${content.digest}`).set("Content-Length", "0").expect(201);
    assert.equal(done.headers.location, `/v2/${NAME}/blobs/${content.digest}`);
    assert.equal(done.headers["docker-content-digest"], content.digest);
    await assertStored();
  });

  it("takes the final chunk in the closing PUT, with its Content-Range", async () => {
    const location = await startSession();
    const first = await patch(location, chunk1, "0-1199").expect(202);
    await patch(first.headers.location, chunk2, "1200-2499").expect(202);
    await app
      .request()
      .put(`${location}?digest=${content.digest}`)
      .set("Content-Range", "2500-2999")
      .set("Content-Type", "application/octet-stream")
      .send(chunk3)
      .expect(201);
    await assertStored();
  });

  it("answers a first chunk that does not start at 0 with 416", async () => {
    const location = await startSession();
    const res = await patch(location, chunk2, "1200-2499").expect(416);
    assert.equal(errorCode(res), "RANGE_INVALID");
    assert.equal(res.headers.range, "0-0");
    assert.equal(res.headers.location, location);
  });

  it("answers a retried (already received) chunk with 416 and the offset actually reached", async () => {
    const location = await startSession();
    await patch(location, chunk1, "0-1199").expect(202);
    const retry = await patch(location, chunk1, "0-1199").expect(416);
    assert.equal(retry.headers.range, "0-1199");
    const skipAhead = await patch(location, chunk3, "2500-2999").expect(416);
    assert.equal(skipAhead.headers.range, "0-1199");
  });

  it("answers a closing PUT whose chunk does not continue the upload with 416", async () => {
    const location = await startSession();
    await patch(location, chunk1, "0-1199").expect(202);
    await app.request().put(`${location}?digest=${content.digest}`).set("Content-Range", "2500-2999").send(chunk3).expect(416);
    await app.request().get(location).expect(204);
  });

  it("reports an upload's progress on GET with 204, Location, Range and Docker-Upload-UUID, and resumes from it", async () => {
    const location = await startSession();
    await patch(location, chunk1, "0-1199").expect(202);
    const status = await app.request().get(location).expect(204);
    assert.equal(status.headers.range, "0-1199");
    assert.equal(status.headers.location, location);
    assert.equal(status.headers["docker-upload-uuid"], location.split("/").pop());
    await patch(status.headers.location, content.bytes.subarray(1200), "1200-2999").expect(202);
    await app.request().put(`${location}?digest=${content.digest}`).expect(201);
    await assertStored();
  });

  it("reports Range 0-0 for a session that has received nothing", async () => {
    const location = await startSession();
    const status = await app.request().get(location).expect(204);
    assert.equal(status.headers.range, "0-0");
  });

  it("appends streamed PATCHes without Content-Range at the current end", async () => {
    const location = await startSession();
    const first = await patch(location, chunk1).expect(202);
    assert.equal(first.headers.range, "0-1199");
    const second = await patch(first.headers.location, content.bytes.subarray(1200)).expect(202);
    assert.equal(second.headers.range, "0-2999");
    await app.request().put(`${location}?digest=${content.digest}`).expect(201);
    await assertStored();
  });

  it("accepts a streamed PATCH sent with chunked transfer encoding", async () => {
    const location = await startSession();
    const res = await fetch(`${app.url}${location}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream" },
      body: new ReadableStream({
        start(controller) {
          for (const part of [chunk1, chunk2, chunk3]) controller.enqueue(part);
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    assert.equal(res.status, 202);
    assert.equal(res.headers.get("range"), "0-2999");
    await app.request().put(`${location}?digest=${content.digest}`).expect(201);
  });

  it("refuses a malformed Content-Range with 400 BLOB_UPLOAD_INVALID", async () => {
    const location = await startSession();
    for (const range of ["abc", "5-2", "-5", "0-"]) {
      const res = await patch(location, chunk1, range).expect(400);
      assert.equal(errorCode(res), "BLOB_UPLOAD_INVALID", range);
    }
    assert.equal((await app.request().get(location).expect(204)).headers.range, "0-0");
  });

  it("refuses a chunk whose Content-Length differs from its Content-Range with 400 SIZE_INVALID", async () => {
    const location = await startSession();
    const res = await patch(location, chunk1, "0-99").expect(400);
    assert.equal(errorCode(res), "SIZE_INVALID");
    assert.equal((await app.request().get(location).expect(204)).headers.range, "0-0");
  });

  it("refuses chunks whose whole does not hash to the digest with 400 DIGEST_INVALID, storing nothing", async () => {
    const whole = blob(randomBytes(2000));
    const location = await startSession();
    await patch(location, whole.bytes.subarray(0, 1000), "0-999").expect(202);
    await patch(location, randomBytes(1000), "1000-1999").expect(202);
    const res = await app.request().put(`${location}?digest=${whole.digest}`).expect(400);
    assert.equal(errorCode(res), "DIGEST_INVALID");
    await app.request().head(`/v2/${NAME}/blobs/${whole.digest}`).expect(404);
    await app.request().get(location).expect(404);
    assert.deepEqual(await app.leftovers(), []);
  });

  it("verifies a chunked upload against a sha512 digest", async () => {
    const digest = `sha512:${createHash("sha512").update(content.bytes).digest("hex")}`;
    const location = await startSession();
    await patch(location, chunk1, "0-1199").expect(202);
    await patch(location, content.bytes.subarray(1200), "1200-2999").expect(202);
    await app.request().put(`${location}?digest=${digest}`).expect(201);
    await app.request().head(`/v2/${NAME}/blobs/${digest}`).expect(200);
  });

  it("cancels an upload on DELETE with 204, after which the session is 404 BLOB_UPLOAD_UNKNOWN", async () => {
    const location = await startSession();
    await patch(location, chunk1, "0-1199").expect(202);
    await app.request().delete(location).expect(204);
    for (const res of [
      await app.request().get(location),
      await patch(location, chunk2, "1200-2499"),
      await app.request().put(`${location}?digest=${content.digest}`),
      await app.request().delete(location),
    ]) {
      assert.equal(res.status, 404);
      assert.equal(errorCode(res), "BLOB_UPLOAD_UNKNOWN");
    }
    await app.request().head(`/v2/${NAME}/blobs/${blob(chunk1).digest}`).expect(404);
  });

  it("keeps what a cut-off chunk delivered: the session's Range covers it and the client resumes from there", async () => {
    const location = await startSession();
    await patch(location, chunk1, "0-1199").expect(202);
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${app.url}${location}`, {
        method: "PATCH",
        headers: { "Content-Type": "application/octet-stream", "Content-Range": "1200-2499", "Content-Length": String(chunk2.length) },
      });
      req.on("error", () => resolve());
      // berth reads what arrived before it learns the client is gone (bytes still unread then are not kept).
      req.write(chunk2.subarray(0, 600), () => setTimeout(() => req.destroy(), 300));
    });
    const range = await rangeOnceSettled(location, "0-1199");
    assert.equal(range, "0-1799");
    assert.deepEqual(await app.leftovers(), []);
    const refused = await patch(location, chunk2, "1200-2499").expect(416);
    assert.equal(refused.headers.range, "0-1799");
    await patch(location, content.bytes.subarray(1800), "1800-2999").expect(202);
    await app.request().put(`${location}?digest=${content.digest}`).expect(201);
    await assertStored();
  });

  /** The session's Range once it is no longer `before` (a cut chunk is placed after its client is gone). */
  const rangeOnceSettled = async (location: string, before: string): Promise<string> => {
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 20))) {
      const range = (await app.request().get(location).expect(204)).headers.range as string;
      if (range !== before) return range;
    }
    return before;
  };
});

describe("an upload across a restart", () => {
  it("is continued and completed by a new app instance over the same storage", async () => {
    const first = await startHostedApp();
    let second: HostedApp | undefined;
    try {
      const location = (await first.request().post(`/v2/${NAME}/blobs/uploads/`).expect(202)).headers.location as string;
      await first.request().patch(location).set("Content-Range", "0-1199").send(chunk1).expect(202);
      second = await first.reopen();
      const status = await second.request().get(location).expect(204);
      assert.equal(status.headers.range, "0-1199");
      await second.request().patch(location).set("Content-Range", "1200-2999").send(content.bytes.subarray(1200)).expect(202);
      await second.request().put(`${location}?digest=${content.digest}`).expect(201);
      const res = await second.request().get(`/v2/${NAME}/blobs/${content.digest}`).buffer(true).parse(rawBytes).expect(200);
      assert.ok(content.bytes.equals(res.body as Buffer));
    } finally {
      await (second ?? first).close();
    }
  });
});
