import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseSchemeUrl, splitHostPort } from "../../../server/upstream/credentials/go-url.js";
import { credentialKey, keyMatchesImage } from "../../../server/upstream/credentials/registry-key.js";

// kubelet keyring_test.go TestUrlsMatch, verbatim.
const KUBELET_URLS_MATCH: [glob: string, target: string, matches: boolean][] = [
  ["*.kubernetes.io", "prefix.kubernetes.io", true],
  ["prefix.*.io", "prefix.kubernetes.io", true],
  ["prefix.kubernetes.*", "prefix.kubernetes.io", true],
  ["*-good.kubernetes.io", "prefix-good.kubernetes.io", true],
  ["*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true],
  ["prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true],
  ["*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", true],
  ["prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", true],
  ["*.kubernetes.io", "kubernetes.io", false],
  ["*.*.kubernetes.io", "prefix.kubernetes.io", false],
  ["*.*.kubernetes.io", "kubernetes.io", false],
  ["kubernetes.io", "kubernetes.com", false],
  ["k*.io", "quay.io", false],
  ["*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", false],
  ["prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", false],
];

describe("kubelet URLsMatch", () => {
  for (const [glob, target, matches] of KUBELET_URLS_MATCH) {
    test(`key ${glob} ${matches ? "matches" : "does not match"} image ${target}`, () => {
      assert.equal(keyMatchesImage(glob, target), matches);
    });
  }

  test("a wildcard label matches one label: *.my-registry.io/images matches sub.my-registry.io/images/my-image", () => {
    assert.equal(keyMatchesImage("*.my-registry.io/images", "sub.my-registry.io/images/my-image"), true);
  });

  test("*my-registry.io/images does not match sub.my-registry.io/images/my-image (two labels against three)", () => {
    assert.equal(keyMatchesImage("*my-registry.io/images", "sub.my-registry.io/images/my-image"), false);
    assert.equal(keyMatchesImage("*my-registry.io/images", "my-registry.io/images/my-image"), true);
    assert.equal(keyMatchesImage("*my-registry.io/images", "your-my-registry.io/images/my-image"), true);
  });

  test("a star never crosses a dot", () => {
    assert.equal(keyMatchesImage("*.io", "a.b.io/x"), false);
    assert.equal(keyMatchesImage("a*.io", "a.b.io/x"), false);
  });

  test("ports must be equal: no port in the key matches only images without a port", () => {
    assert.equal(keyMatchesImage("registry.local", "registry.local/app"), true);
    assert.equal(keyMatchesImage("registry.local", "registry.local:5000/app"), false);
    assert.equal(keyMatchesImage("registry.local:5000", "registry.local/app"), false);
    assert.equal(keyMatchesImage("registry.local:5000", "registry.local:5000/app"), true);
    assert.equal(keyMatchesImage("registry.local:5000", "registry.local:5001/app"), false);
    assert.equal(keyMatchesImage("*.local:443", "registry.local:443/app"), true);
  });

  test("an empty port is no port", () => {
    assert.equal(keyMatchesImage("registry.local:", "registry.local/app"), true);
  });

  test("the path is a plain string prefix, not a path-segment prefix", () => {
    assert.equal(keyMatchesImage("quay.io/org", "quay.io/org/app"), true);
    assert.equal(keyMatchesImage("quay.io/org", "quay.io/organisation/app"), true);
    assert.equal(keyMatchesImage("quay.io/org/", "quay.io/org/app"), true);
    assert.equal(keyMatchesImage("quay.io/org/", "quay.io/organisation/app"), false);
    assert.equal(keyMatchesImage("quay.io/org", "quay.io/other/app"), false);
    assert.equal(keyMatchesImage("quay.io/org/app", "quay.io/org"), false);
  });

  test("labels are compared case-sensitively, as kubelet does", () => {
    assert.equal(keyMatchesImage("Registry.io", "registry.io/app"), false);
  });

  test("a class in a label works, except where Go's URL parser or SplitHostPort reject it", () => {
    assert.equal(keyMatchesImage("node[0-9].cluster.local", "node7.cluster.local/app"), true);
    assert.equal(keyMatchesImage("node[0-9].cluster.local", "nodex.cluster.local/app"), false);
    // SplitHostPort refuses a '[' outside an IP literal, so kubelet sees the port as part of a label.
    assert.equal(keyMatchesImage("node[0-9].cluster.local:5000", "node7.cluster.local:5000/app"), false);
  });
});

describe("kubelet credential keys", () => {
  const cases: [location: string, key: string | undefined][] = [
    ["quay.io", "quay.io"],
    ["https://quay.io", "quay.io"],
    ["http://quay.io", "quay.io"],
    ["https://quay.io/", "quay.io"],
    ["https://quay.io/v1/", "quay.io"],
    ["https://quay.io/v2/", "quay.io"],
    ["quay.io/v2/org", "quay.io/org"],
    ["https://index.docker.io/v1/", "index.docker.io"],
    ["index.docker.io/v1/", "index.docker.io"],
    ["https://*.docker.io/v1/", "*.docker.io"],
    ["registry.local:5000/team/", "registry.local:5000/team/"],
    ["quay.io/v1", "quay.io/v1"],
    ["https://user:pass@quay.io/org", "quay.io/org"],
    ["quay.io/org#frag", "quay.io/org"],
    ["quay.io/a%2Fb", "quay.io/a/b"],
    ["[::1]:5000", "[::1]:5000"],
  ];
  for (const [location, key] of cases) {
    test(`location ${JSON.stringify(location)} becomes key ${JSON.stringify(key)}`, () => {
      assert.equal(credentialKey(location), key);
    });
  }

  test("a '?' ends the host, as in any URL: reg?.io/x is the key reg", () => {
    assert.equal(credentialKey("reg?.io/x"), "reg");
  });

  test("locations Go's URL parser rejects have no key (kubelet ignores the entry)", () => {
    for (const location of ["a\\b.io", "a^b.io", "a b.io", "[ab].io", "quay.io:port", "quay.io/%zz", "quay.io/\u0001", "a%41.io", "us er@quay.io"]) {
      assert.equal(credentialKey(location), undefined, location);
    }
  });

  test("only a lower-case scheme is recognised, as in kubelet: HTTPS://quay.io matches nothing on quay.io", () => {
    const key = credentialKey("HTTPS://quay.io");
    assert.equal(key, "HTTPS://quay.io");
    assert.equal(keyMatchesImage(key, "quay.io/app"), false);
  });
});

describe("Go URL and host:port splitting", () => {
  test("parses host with port and decoded path", () => {
    assert.deepEqual(parseSchemeUrl("https://reg.io:5000/a%20b?q=1"), { host: "reg.io:5000", path: "/a b" });
    assert.deepEqual(parseSchemeUrl("https://reg.io"), { host: "reg.io", path: "" });
  });

  test("IPv6 literals and zones parse", () => {
    assert.deepEqual(parseSchemeUrl("https://[fe80::1%25en0]:80/x"), { host: "[fe80::1%en0]:80", path: "/x" });
    assert.equal(parseSchemeUrl("https://[fe80::1/x"), undefined);
  });

  test("SplitHostPort separates a port, and refuses what Go refuses", () => {
    assert.deepEqual(splitHostPort("reg.io:5000"), { host: "reg.io", port: "5000" });
    assert.deepEqual(splitHostPort("[::1]:5000"), { host: "::1", port: "5000" });
    assert.deepEqual(splitHostPort("reg.io:"), { host: "reg.io", port: "" });
    for (const hostport of ["reg.io", "a:b:c", "[::1]", "[::1]x:5", "x[a]:5", "[a]]:5"]) {
      assert.equal(splitHostPort(hostport), undefined, hostport);
    }
  });
});
