import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { listenOnLoopback, type LoopbackServer } from "../support/loopback-server.js";
import { FakeUpstream } from "./fake-upstream.js";
import { startMirror } from "./mirror-fixture.js";
import { refusal } from "./upstream-refusal.js";


const HTML = { "content-type": "text/html" };
const PAGE = "<!doctype html><html><body>Sign in to continue</body></html>";
const JSON_TYPE = { "content-type": "application/json" };
const MiB = 1024 * 1024;

describe("a mirror whose upstream answers with garbage or beyond berth's limits", () => {
  let upstream: FakeUpstream;
  let elsewhere: LoopbackServer;
  let elsewhereRequests = 0;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  let counter = 0;

  before(async () => {
    upstream = await new FakeUpstream().start();
    elsewhere = await listenOnLoopback((_req, res) => {
      elsewhereRequests++;
      res.end('{"tags":["planted"]}');
    });
    berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "fake", readTimeout: "2s", connectTimeout: "1s" }]);
  });
  after(async () => {
    await berth?.stop();
    await upstream?.stop();
    await elsewhere?.stop();
  });

  /** A fresh repository: backoff and the tag list cache are per upstream and repository. */
  const fresh = () => `team/app${counter++}`;
  const viaBerth = (path: string) => fetch(`${berth.url}/v2/fake/${path}`);

  describe("tag lists", () => {
    for (const [name, fault, reason] of [
      ["an HTML page", { kind: "answer", headers: HTML, body: PAGE }, /tag list that is not JSON/],
      ["JSON that is not an object", { kind: "answer", headers: JSON_TYPE, body: '["v1"]' }, /tag list that is not a JSON object/],
      ["tags that are not strings", { kind: "answer", headers: JSON_TYPE, body: '{"name":"x","tags":[1,{"a":2}]}' }, /tag list whose tags are not strings/],
      ["a body beyond 16 MiB", { kind: "oversize", bytes: 16 * MiB + 1 }, /tag list larger than 16 MiB/],
    ] as const) {
      it(`answers 502 for ${name}`, async () => {
        const repo = fresh();
        upstream.setFault(`/v2/${repo}/tags/list`, fault);
        assert.match(await refusal(await viaBerth(`${repo}/tags/list`)), reason);
      });
    }

    it("reads a tag list whose tags are null as no tags", async () => {
      const repo = fresh();
      upstream.setFault(`/v2/${repo}/tags/list`, { kind: "answer", headers: JSON_TYPE, body: '{"name":"x","tags":null}' });
      const response = await viaBerth(`${repo}/tags/list`);
      assert.equal(response.status, 200);
      assert.deepEqual(((await response.json()) as { tags: string[] }).tags, []);
    });

    it("follows pagination on the upstream's own origin", async () => {
      const repo = fresh();
      upstream.setFault(`/v2/${repo}/tags/list`, { kind: "answer", headers: { ...JSON_TYPE, link: `</v2/${repo}/tags/page2?n=1&last=a>; rel="next"` }, body: '{"tags":["a"]}' });
      upstream.setFault(`/v2/${repo}/tags/page2`, { kind: "answer", headers: JSON_TYPE, body: '{"tags":["b"]}' });
      const response = await viaBerth(`${repo}/tags/list`);
      assert.equal(response.status, 200);
      assert.deepEqual(((await response.json()) as { tags: string[] }).tags, ["a", "b"]);
    });

    it("refuses a next page on another host, without asking it", async () => {
      const repo = fresh();
      upstream.setFault(`/v2/${repo}/tags/list`, { kind: "answer", headers: { ...JSON_TYPE, link: `<${elsewhere.url}/v2/${repo}/tags/list?n=1&last=a>; rel="next"` }, body: '{"tags":["a"]}' });
      assert.match(await refusal(await viaBerth(`${repo}/tags/list`)), /tag list page link to another host/);
      assert.equal(elsewhereRequests, 0);
    });

    it("refuses pages that link in a circle", async () => {
      const repo = fresh();
      upstream.setFault(`/v2/${repo}/tags/list`, { kind: "answer", headers: { ...JSON_TYPE, link: `</v2/${repo}/tags/list>; rel="next"` }, body: '{"tags":["a"]}' });
      assert.match(await refusal(await viaBerth(`${repo}/tags/list`)), /tag list whose pages link in a circle/);
      assert.equal(upstream.count("GET", `/v2/${repo}/tags/list`), 1);
    });

    it("reads at most 1000 pages of a tag list that never ends", async () => {
      const repo = fresh();
      upstream.setFault(`/v2/${repo}/tags/list`, { kind: "endless-pages" });
      assert.match(await refusal(await viaBerth(`${repo}/tags/list`)), /tag list of more than 1000 pages/);
      assert.equal(upstream.count("GET", `/v2/${repo}/tags/list`), 1000);
    });
  });

  describe("referrers", () => {
    for (const [name, body, reason] of [
      ["an HTML page", PAGE, /referrers index that is not JSON/],
      ["manifests that are not descriptors", '{"schemaVersion":2,"manifests":[{"digest":"nope","size":-1}]}', /referrers index that is not an OCI index/],
    ] as const) {
      it(`answers 502 for ${name}, not an empty list`, async () => {
        const repo = fresh();
        const subject = `sha256:${"b".repeat(64)}`;
        upstream.setFault(`/v2/${repo}/referrers/${subject}`, { kind: "answer", headers: HTML, body });
        assert.match(await refusal(await viaBerth(`${repo}/referrers/${subject}`)), reason);
      });
    }

    it("refuses a referrers index beyond 4 MiB", async () => {
      const repo = fresh();
      const subject = `sha256:${"c".repeat(64)}`;
      upstream.setFault(`/v2/${repo}/referrers/${subject}`, { kind: "oversize", bytes: 4 * MiB + 1 });
      assert.match(await refusal(await viaBerth(`${repo}/referrers/${subject}`)), /referrers index larger than 4 MiB/);
    });
  });

  describe("manifests", () => {
    it("answers 502 for an HTML page served as a manifest", async () => {
      const repo = fresh();
      upstream.setFault(`/v2/${repo}/manifests/v1`, { kind: "answer", headers: HTML, body: PAGE });
      await refusal(await viaBerth(`${repo}/manifests/v1`));
    });

    it("refuses a Content-Length beyond 4 MiB before reading a byte of the body", async () => {
      const repo = fresh();
      // The body never comes: reading it would wait out the read timeout (a 503), not refuse (a 502).
      upstream.setFault(`/v2/${repo}/manifests/v1`, { kind: "declared-length", length: 1024 * MiB });
      assert.match(await refusal(await viaBerth(`${repo}/manifests/v1`)), /manifest larger than 4 MiB/);
    });

    it("cuts a chunked manifest that never ends once it passes 4 MiB", async () => {
      const repo = fresh();
      const fault: { kind: "endless"; sent?: number; closed?: boolean } = { kind: "endless" };
      upstream.setFault(`/v2/${repo}/manifests/v1`, fault);
      assert.match(await refusal(await viaBerth(`${repo}/manifests/v1`)), /manifest larger than 4 MiB/);
      for (let i = 0; i < 100 && !fault.closed; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(fault.closed, true, "berth hung up on the endless body");
    });
  });

  describe("token realms and challenges", () => {
    /** Has the upstream challenge for `repo`'s manifest with `challenge`, and answer its own /token path with `token`. */
    function challenge(repo: string, header: (upstreamUrl: string) => string, token?: Parameters<FakeUpstream["setFault"]>[1]): void {
      upstream.setFault(`/v2/${repo}/manifests/v1`, { kind: "status", status: 401, headers: { "www-authenticate": header(upstream.url) } });
      if (token) upstream.setFault(`/token/${repo}`, token);
    }

    for (const [name, token, reason] of [
      ["an HTML page", { kind: "answer", headers: HTML, body: PAGE }, /token response that is not JSON/],
      ["JSON without a token", { kind: "answer", headers: JSON_TYPE, body: '{"expires_in":300}' }, /token response without a usable token/],
      ["a token that cannot be a header value", { kind: "answer", headers: JSON_TYPE, body: '{"token":"abc\\r\\nX-Injected: 1"}' }, /token response without a usable token/],
      ["a body beyond 1 MiB", { kind: "oversize", bytes: MiB + 1 }, /token response larger than 1 MiB/],
    ] as const) {
      it(`answers 502 for a token response that is ${name}`, async () => {
        const repo = fresh();
        challenge(repo, (url) => `Bearer realm="${url}/token/${repo}",service="fake"`, token);
        assert.match(await refusal(await viaBerth(`${repo}/manifests/v1`)), reason);
      });
    }

    for (const [name, header, reason] of [
      ["a Bearer challenge without a realm", () => 'Bearer service="fake",scope="repository:x:pull"', /Bearer challenge without a realm/],
      ["a realm that is not a URL", () => 'Bearer realm="not a url",service="fake"', /token realm that is not a URL/],
      ["a scheme berth does not speak", () => 'Negotiate realm="x"', /challenge of a scheme berth does not speak/],
    ] as [string, () => string, RegExp][]) {
      it(`answers 502 for ${name}`, async () => {
        const repo = fresh();
        challenge(repo, header);
        assert.match(await refusal(await viaBerth(`${repo}/manifests/v1`)), reason);
      });
    }

    it("answers 502 for a WWW-Authenticate header beyond 16 KiB, and does not back off", async () => {
      const repo = fresh();
      challenge(repo, (url) => `Bearer realm="${url}/token/${repo}",service="${"x".repeat(64 * 1024)}"`);
      assert.match(await refusal(await viaBerth(`${repo}/manifests/v1`)), /answer whose headers exceed what berth reads/);
      await refusal(await viaBerth(`${repo}/manifests/v1`));
    });
  });
});
