import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import { ABSENT_DIGEST, blob, errorCode, pushBlob, pushImage, rawBytes, sha256, type Content } from "./oci-fixtures.js";

describe("pulling blobs", () => {
  let app: HostedApp;
  const content: Content = blob("0123456789abcdefghij");
  const path = `/v2/pull/blobs/blobs/${content.digest}`;

  before(async () => {
    app = await startHostedApp();
    await pushBlob(app, "pull/blobs", content);
  });
  after(() => app.close());

  const get = (url: string, range?: string) => {
    const request = app.request().get(url).buffer(true).parse(rawBytes);
    return range === undefined ? request : request.set("Range", range);
  };

  it("serves a blob with 200, its bytes, Content-Length and a Docker-Content-Digest matching the body", async () => {
    const res = await get(path).expect(200);
    assert.ok(content.bytes.equals(res.body as Buffer));
    assert.equal(res.headers["content-length"], String(content.bytes.length));
    assert.equal(res.headers["docker-content-digest"], content.digest);
    assert.equal(sha256(res.body as Buffer), res.headers["docker-content-digest"]);
    assert.equal(res.headers["content-type"], "application/octet-stream");
    assert.equal(res.headers["accept-ranges"], "bytes");
  });

  it("answers HEAD with 200, Content-Length and Docker-Content-Digest and no body", async () => {
    const res = await app.request().head(path).expect(200);
    assert.equal(res.headers["content-length"], String(content.bytes.length));
    assert.equal(res.headers["docker-content-digest"], content.digest);
    assert.equal(res.text, undefined);
  });

  it("answers 404 BLOB_UNKNOWN for an unknown blob on GET and HEAD", async () => {
    const res = await app.request().get(`/v2/pull/blobs/blobs/${ABSENT_DIGEST}`).expect(404);
    assert.equal(errorCode(res), "BLOB_UNKNOWN");
    await app.request().head(`/v2/pull/blobs/blobs/${ABSENT_DIGEST}`).expect(404);
  });

  it("does not serve a blob that only another repository holds", async () => {
    await app.request().get(`/v2/pull/elsewhere/blobs/${content.digest}`).expect(404);
    await app.request().head(`/v2/pull/elsewhere/blobs/${content.digest}`).expect(404);
  });

  const ranges: [string, string, number, number][] = [
    ["a closed range", "bytes=2-5", 2, 5],
    ["an open range, as containerd sends to resume", "bytes=7-", 7, 19],
    ["a suffix range", "bytes=-3", 17, 19],
    ["a range ending past the blob, clamped to its end", "bytes=15-1000", 15, 19],
    ["a one-byte range", "bytes=0-0", 0, 0],
  ];
  for (const [what, header, start, end] of ranges) {
    it(`answers ${what} (${header}) with 206, Content-Range and just those bytes`, async () => {
      const res = await get(path, header).expect(206);
      assert.ok(content.bytes.subarray(start, end + 1).equals(res.body as Buffer));
      assert.equal(res.headers["content-range"], `bytes ${start}-${end}/${content.bytes.length}`);
      assert.equal(res.headers["content-length"], String(end - start + 1));
      assert.equal(res.headers["docker-content-digest"], content.digest);
    });
  }

  it("answers a range starting at or past the end with 416 and Content-Range bytes */size", async () => {
    for (const header of ["bytes=20-", "bytes=25-30", "bytes=-0"]) {
      const res = await app.request().get(path).set("Range", header).expect(416);
      assert.equal(res.headers["content-range"], `bytes */${content.bytes.length}`, header);
    }
  });

  it("answers a range whose last byte comes before its first (bytes=5-2) with 416 and Content-Range bytes */size, as Distribution does", async () => {
    for (const header of ["bytes=5-2", "bytes=19-0", "bytes=500-0"]) {
      const res = await app.request().get(path).set("Range", header).expect(416);
      assert.equal(res.headers["content-range"], `bytes */${content.bytes.length}`, header);
      assert.equal(errorCode(res), "RANGE_INVALID", header);
    }
  });

  it("answers any range of an empty blob with 416", async () => {
    const empty = blob("");
    await pushBlob(app, "pull/blobs", empty);
    const res = await app.request().get(`/v2/pull/blobs/blobs/${empty.digest}`).set("Range", "bytes=0-").expect(416);
    assert.equal(res.headers["content-range"], "bytes */0");
    await app.request().get(`/v2/pull/blobs/blobs/${empty.digest}`).expect(200);
  });

  it("ignores a Range header it cannot honour (other units, several ranges, garbage) and serves the whole blob", async () => {
    for (const header of ["items=0-1", "bytes=0-1,3-4", "bytes=abc"]) {
      const res = await get(path, header).expect(200);
      assert.ok(content.bytes.equals(res.body as Buffer), header);
    }
  });

  it("answers a Range request for an unknown blob with 404, not 416", async () => {
    await app.request().get(`/v2/pull/blobs/blobs/${ABSENT_DIGEST}`).set("Range", "bytes=0-").expect(404);
  });

  it("streams a multi-megabyte blob intact", async () => {
    const large = blob(randomBytes(3 * 1024 * 1024 + 17));
    await pushBlob(app, "pull/blobs", large);
    const res = await get(`/v2/pull/blobs/blobs/${large.digest}`).expect(200);
    assert.equal(sha256(res.body as Buffer), large.digest);
    const tail = await get(`/v2/pull/blobs/blobs/${large.digest}`, `bytes=${large.bytes.length - 1000}-`).expect(206);
    assert.ok(large.bytes.subarray(large.bytes.length - 1000).equals(tail.body as Buffer));
  });

  it("serves a manifest through the blobs endpoint too, as Distribution does", async () => {
    const image = await pushImage(app, "pull/manifest-as-blob", "v1");
    const res = await get(`/v2/pull/manifest-as-blob/blobs/${image.manifest.digest}`).expect(200);
    assert.ok(image.manifest.bytes.equals(res.body as Buffer));
  });
});
