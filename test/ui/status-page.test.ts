import assert from "node:assert/strict";
import { describe, it } from "node:test";
import bcrypt from "bcryptjs";
import type { StatusSnapshot } from "../../server/metrics/berth-metrics.js";
import { renderStatusPage } from "../../server/http/status-page.js";
import { startMirror } from "../mirror/mirror-fixture.js";

const HOSTILE = `<script>alert("x")</script>&'`;

function snapshot(overrides: Partial<StatusSnapshot> = {}): StatusSnapshot {
  return {
    takenAt: new Date("2024-05-01T12:00:00Z"),
    upstreams: [],
    hits: 0,
    misses: 0,
    topRepositories: [],
    transfers: [],
    ...overrides,
  };
}

describe("status page rendering", () => {
  it("escapes every value it shows: upstream names, URLs, repositories and digests", () => {
    const html = renderStatusPage(
      snapshot({
        upstreams: [
          {
            host: HOSTILE,
            url: `http://example.test/${HOSTILE}`,
            health: "backing off",
            backingOff: [{ repository: HOSTILE, remainingMs: 9000 }],
            requests: 3,
            lastStatus: 500,
            lastAnswerAt: new Date("2024-05-01T11:59:58Z"),
            hits: 1,
            misses: 1,
            receivedBytes: 1536,
          },
        ],
        topRepositories: [{ repository: HOSTILE, requests: 7 }],
        transfers: [{ digest: HOSTILE, written: 10, size: 40 }],
      }),
    );
    assert.ok(!html.includes("<script>"), "a raw <script> made it into the page");
    assert.ok(!html.includes(`"x"`), "a raw quote made it into the page");
    assert.equal(html.split("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;").length - 1, 5);
  });

  it("shows hit ratio, backoff, transfer progress and the last collection in words and numbers", () => {
    const html = renderStatusPage(
      snapshot({
        upstreams: [
          {
            host: "registry.example:5000",
            url: "http://registry.example:5000",
            health: "backing off",
            backingOff: [{ repository: "team/app", remainingMs: 9000 }],
            requests: 3,
            lastStatus: 500,
            lastAnswerAt: new Date("2024-05-01T11:59:58Z"),
            hits: 3,
            misses: 1,
            receivedBytes: 1536,
          },
        ],
        hits: 3,
        misses: 1,
        transfers: [{ digest: "sha256:abc", written: 512 * 1024, size: 2 * 1024 * 1024 }],
        lastCollection: { at: new Date("2024-05-01T11:00:00Z"), report: { hostedBytes: 2048, cacheBytes: 3 * 1024 * 1024, deletedUnreferenced: 2, evicted: 1, freedBytes: 100 } },
      }),
    );
    assert.match(html, /<dd id="hit-ratio">75\.0%<\/dd>/);
    assert.match(html, /<code>team\/app<\/code> retry in 9 s/);
    assert.match(html, /500, 2 s ago/);
    assert.match(html, /512\.0 KiB<\/td><td class="number">2\.0 MiB<\/td><td class="number">25%/);
    assert.match(html, /<dd id="cache-size">3\.0 MiB<\/dd>/);
    assert.match(html, /<dt>Blobs evicted<\/dt><dd>1<\/dd>/);
  });

  it("says so when nothing has been measured yet instead of showing zeros", () => {
    const html = renderStatusPage(snapshot());
    assert.match(html, /<dd id="hit-ratio">no lookups yet<\/dd>/);
    assert.match(html, /not measured yet/);
    assert.match(html, /No upstreams configured\./);
  });
});

describe("/ui", () => {
  it("answers HTML that no script can run in, never cached", async (t) => {
    const berth = await startMirror([]);
    t.after(() => berth.stop());
    const response = await fetch(`${berth.url}/ui`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/html; charset=utf-8/);
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.match(response.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    assert.match(await response.text(), /<title>berth status<\/title>/);
  });

  it("is served to loopback clients in auth mode token, without a token", async (t) => {
    const berth = await startMirror([], {
      auth: { mode: "token", users: [{ username: "ci", passwordHash: bcrypt.hashSync("pw", 4) }], policy: [] },
    });
    t.after(() => berth.stop());
    const response = await fetch(`${berth.url}/ui`);
    assert.equal(response.status, 200);
    await response.arrayBuffer();
  });
});
