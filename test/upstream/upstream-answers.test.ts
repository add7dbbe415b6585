import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LIMITS, nextTagPage, referrersIndex, tagPage, tokenAnswer } from "../../server/upstream/upstream-answers.js";
import { UpstreamError } from "../../server/upstream/upstream-error.js";

/** The client-facing reason of the "invalid" failure `parse` throws. */
function reasonOf(parse: () => unknown): string | undefined {
  try {
    parse();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof UpstreamError && err.failure === "invalid", String(err));
    return err.options.reason;
  }
}

const json = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value));

describe("tokenAnswer", () => {
  it("reuses a token for as long as expires_in says, up to an hour", () => {
    assert.deepEqual(tokenAnswer(json({ token: "t", expires_in: 300 }), "x"), { token: "t", expiresIn: 300 });
    assert.equal(tokenAnswer(json({ access_token: "t", expires_in: 10 ** 12 }), "x").expiresIn, LIMITS.tokenSeconds);
  });

  it("reuses a token 60 s when expires_in is absent, not a positive number, or not finite", () => {
    for (const expires of ['"300"', "-5", "0", "null", "1e999"]) {
      assert.equal(tokenAnswer(json(`{"token":"t","expires_in":${expires}}`), "x").expiresIn, 60, expires);
    }
    assert.equal(tokenAnswer(json({ token: "t" }), "x").expiresIn, 60);
  });

  it("refuses answers that carry no token usable as a header value", () => {
    assert.equal(reasonOf(() => tokenAnswer(json({ token: "" }), "x")), "token response without a usable token");
    assert.equal(reasonOf(() => tokenAnswer(json({ token: 42 }), "x")), "token response without a usable token");
    assert.equal(reasonOf(() => tokenAnswer(json({ token: "a b" }), "x")), "token response without a usable token");
    assert.equal(reasonOf(() => tokenAnswer(json("<html>"), "x")), "token response that is not JSON");
    assert.equal(reasonOf(() => tokenAnswer(json("null"), "x")), "token response that is not a JSON object");
  });
});

describe("tagPage and nextTagPage", () => {
  const own = new URL("https://registry.example/v2/app/tags/list");
  const isOwn = (url: URL) => url.origin === own.origin;

  it("reads tags, and null or absent tags as none", () => {
    assert.deepEqual(tagPage(json({ name: "app", tags: ["a", "b"] }), "x"), ["a", "b"]);
    assert.deepEqual(tagPage(json({ name: "app", tags: null }), "x"), []);
    assert.deepEqual(tagPage(json({ name: "app" }), "x"), []);
  });

  it("follows a next page on the upstream's own origin, relative or absolute", () => {
    assert.equal(nextTagPage('</v2/app/tags/list?n=2&last=b>; rel="next"', own, isOwn, "x")?.href, "https://registry.example/v2/app/tags/list?n=2&last=b");
    assert.equal(nextTagPage("<https://registry.example/v2/app/tags/list?last=b>; rel=next", own, isOwn, "x")?.href, "https://registry.example/v2/app/tags/list?last=b");
    assert.equal(nextTagPage(undefined, own, isOwn, "x"), undefined);
    assert.equal(nextTagPage('</v2/app/tags/list?last=b>; rel="prev"', own, isOwn, "x"), undefined);
  });

  it("refuses a next page anywhere else", () => {
    for (const link of ["<https://elsewhere.example/v2/app/tags/list>", "<//127.0.0.1:5000/v2/>", "<http://registry.example/v2/app/tags/list>", "<https://registry.example:8443/v2/>"]) {
      assert.equal(reasonOf(() => nextTagPage(`${link}; rel="next"`, own, isOwn, "x")), "tag list page link to another host", link);
    }
    assert.equal(reasonOf(() => nextTagPage('<http://[::1>; rel="next"', own, isOwn, "x")), "tag list page link that is not a URL");
  });
});

describe("referrersIndex", () => {
  const descriptor = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${"a".repeat(64)}`, size: 12, artifactType: "application/vnd.example.sbom" };

  it("reads the descriptors of an OCI index, and none when it lists none", () => {
    assert.deepEqual(referrersIndex(json({ schemaVersion: 2, manifests: [descriptor] }), "x"), [descriptor]);
    assert.deepEqual(referrersIndex(json({ schemaVersion: 2 }), "x"), []);
  });

  it("refuses entries that are not descriptors", () => {
    for (const bad of [{ ...descriptor, digest: "sha256:short" }, { ...descriptor, size: -1 }, { ...descriptor, size: "12" }, { ...descriptor, annotations: { a: 1 } }, "x"]) {
      assert.equal(reasonOf(() => referrersIndex(json({ manifests: [bad] }), "x")), "referrers index that is not an OCI index", JSON.stringify(bad));
    }
  });
});
