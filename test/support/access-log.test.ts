import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { countRequests, parseAccessLogLine } from "./access-log.js";

describe("access-log", () => {
  it("parses Distribution's combined-format lines and counts by method and exact path", () => {
    const lines = [
      '127.0.0.1 - - [25/Nov/2026:08:02:57 +0000] "GET /v2/team/app/blobs/sha256:ab?ns=127.0.0.1%3A1 HTTP/1.1" 200 1174 "" "containerd/1.6.20~ds1"',
      '127.0.0.1 - - [25/Nov/2026:08:02:58 +0000] "HEAD /v2/team/app/blobs/sha256:ab HTTP/1.1" 200 0 "" "skopeo/1.9.3"',
      '127.0.0.1 - - [25/Nov/2026:08:02:59 +0000] "GET /v2/team/app/blobs/sha256:ab HTTP/1.1" 404 - "" "skopeo/1.9.3"',
      'time="2026-11-25T08:02:57Z" level=info msg="response completed"',
    ];
    const entries = lines.map(parseAccessLogLine);
    assert.deepEqual(entries[0], {
      method: "GET",
      path: "/v2/team/app/blobs/sha256:ab",
      query: "ns=127.0.0.1%3A1",
      status: 200,
      bytes: 1174,
      userAgent: "containerd/1.6.20~ds1",
    });
    assert.equal(entries[2]?.bytes, 0);
    assert.equal(entries[3], undefined);
    const parsed = entries.filter((e) => e !== undefined);
    assert.equal(countRequests(parsed, "GET", "/v2/team/app/blobs/sha256:ab"), 2);
    assert.equal(countRequests(parsed, "HEAD", "/v2/team/app/blobs/sha256:ab"), 1);
  });
});
