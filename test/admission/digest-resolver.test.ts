import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DigestResolver } from "../../server/admission/digest-resolver.js";
import { Digest } from "../../server/reference/digest.js";
import { RegistryError } from "../../server/registry/errors.js";
import type { ManifestReference, ManifestRequest, Registry, Repository } from "../../server/registry/registry.js";

/** A registry whose one repository answers getManifest with `answer`. */
function registryAnswering(answer: (reference: ManifestReference, request: ManifestRequest) => Promise<Digest>): Registry & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    async route({ name }) {
      const repository = {
        name,
        getManifest: async (reference: ManifestReference, request: ManifestRequest) => {
          asked.push(`${name}:${reference.tag} accept=${request.accept.join(",")}`);
          return { digest: await answer(reference, request), mediaType: "application/vnd.oci.image.index.v1+json", bytes: Buffer.from("{}") };
        },
      } as unknown as Repository;
      return { policyName: name, scopeNames: [name], open: async () => repository };
    },
    catalog: async () => [],
  };
}

describe("digest resolution through the registry layer", () => {
  it("asks for the tag accepting indexes first, and returns the digest", async () => {
    const digest = Digest.of("sha256", "index");
    const registry = registryAnswering(async () => digest);
    assert.equal(await new DigestResolver(registry, 1000).resolve("docker.io/library/nginx", "1.25"), digest);
    assert.deepEqual(registry.asked, [
      "docker.io/library/nginx:1.25 accept=application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json",
    ]);
  });

  it("gives the cause of an unknown registry error, not just 'unknown error'", async () => {
    const registry = registryAnswering(async () => {
      throw new RegistryError("UNKNOWN", undefined, undefined, { cause: new Error("ENOSPC: no space left on device") });
    });
    await assert.rejects(new DigestResolver(registry, 1000).resolve("a/b", "v1"), { message: "unknown error: ENOSPC: no space left on device" });
  });

  it("gives up after its timeout while the lookup hangs", async () => {
    const registry = registryAnswering(() => new Promise<Digest>(() => undefined));
    await assert.rejects(new DigestResolver(registry, 50).resolve("a/b", "v1"), { message: "no answer within 0.05s" });
  });
});
