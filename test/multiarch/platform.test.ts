import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parsePlatform, selectPlatform } from "../../server/registry/platform.js";
import { acceptsIndex } from "../../server/registry/platform-registry.js";

const entries = [
  { digest: "amd64", platform: { os: "linux", architecture: "amd64" } },
  { digest: "arm-v6", platform: { os: "linux", architecture: "arm", variant: "v6" } },
  { digest: "arm-v7", platform: { os: "linux", architecture: "arm", variant: "v7" } },
  { digest: "arm64", platform: { os: "linux", architecture: "arm64" } },
  { digest: "attestation", platform: { os: "unknown", architecture: "unknown" } },
  { digest: "windows", platform: { os: "windows", architecture: "amd64" } },
];

describe("platform selection", () => {
  it("picks the entry whose os and architecture match", () => {
    assert.equal(selectPlatform(entries, parsePlatform("linux/amd64")!)?.digest, "amd64");
    assert.equal(selectPlatform(entries, parsePlatform("windows/amd64")!)?.digest, "windows");
  });

  it("treats arm64 without a variant as arm64/v8", () => {
    assert.equal(selectPlatform(entries, parsePlatform("linux/arm64/v8")!)?.digest, "arm64");
  });

  it("picks the exact arm variant, and v7 for a bare arm", () => {
    assert.equal(selectPlatform(entries, parsePlatform("linux/arm/v6")!)?.digest, "arm-v6");
    assert.equal(selectPlatform(entries, parsePlatform("linux/arm")!)?.digest, "arm-v7");
  });

  it("finds nothing for a platform the index lacks, and never an attestation entry", () => {
    assert.equal(selectPlatform(entries, parsePlatform("linux/s390x")!), undefined);
    assert.equal(selectPlatform(entries, parsePlatform("linux/arm/v5")!), undefined);
  });

  it("rejects malformed platform strings", () => {
    assert.equal(parsePlatform("linux"), undefined);
    assert.equal(parsePlatform("linux/amd64/v1/x"), undefined);
    assert.equal(parsePlatform("Linux/AMD64"), undefined);
  });
});

describe("Accept negotiation", () => {
  it("lets a client take an index when its Accept names an index type or */*, or is absent", () => {
    assert.equal(acceptsIndex([]), true);
    assert.equal(acceptsIndex(["application/vnd.oci.image.index.v1+json"]), true);
    assert.equal(acceptsIndex(["application/vnd.docker.distribution.manifest.list.v2+json"]), true);
    assert.equal(acceptsIndex(["application/vnd.docker.distribution.manifest.v2+json", "*/*"]), true);
  });

  it("refuses an index to a client whose Accept lists only image manifests", () => {
    assert.equal(acceptsIndex(["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"]), false);
  });
});
