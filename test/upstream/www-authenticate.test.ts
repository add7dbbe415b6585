import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseChallenge } from "../../server/upstream/www-authenticate.js";

describe("parseChallenge", () => {
  it("reads a Docker token challenge with quoted, comma-bearing parameters", () => {
    const challenge = parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push"');
    assert.deepEqual(challenge, {
      scheme: "bearer",
      params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/nginx:pull,push" },
    });
  });

  it("reads a Basic challenge", () => {
    assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: "basic", params: { realm: "Registry Realm" } });
  });

  it("unescapes quoted pairs and accepts unquoted tokens", () => {
    assert.deepEqual(parseChallenge('Bearer realm="a\\"b", error=insufficient_scope'), { scheme: "bearer", params: { realm: 'a"b', error: "insufficient_scope" } });
  });

  it("returns undefined for an absent or empty header", () => {
    assert.equal(parseChallenge(undefined), undefined);
    assert.equal(parseChallenge("   "), undefined);
  });
});
