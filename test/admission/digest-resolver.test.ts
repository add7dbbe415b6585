import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DigestResolver } from "../../server/admission/digest-resolver.js";
import { OpenAccess, type AccessController, type Principal } from "../../server/auth/access.js";
import { Digest } from "../../server/reference/digest.js";
import { RegistryError } from "../../server/registry/errors.js";
import type { ManifestReference, ManifestRequest, Registry, Repository, RequestedBy } from "../../server/registry/registry.js";

const POD: Principal = { subject: "system:serviceaccount:team-a:default", tenant: "team-a", role: "serviceaccount" };

/** A registry whose one repository answers getManifest with `answer`; it records whom each repository was opened for. */
function registryAnswering(answer: (reference: ManifestReference, request: ManifestRequest) => Promise<Digest>): Registry & { asked: string[]; openedFor: unknown[] } {
  const asked: string[] = [];
  const openedFor: unknown[] = [];
  return {
    asked,
    openedFor,
    async route({ name }) {
      const repository = {
        name,
        getManifest: async (reference: ManifestReference, request: ManifestRequest) => {
          asked.push(`${name}:${reference.tag} accept=${request.accept.join(",")}`);
          return { digest: await answer(reference, request), mediaType: "application/vnd.oci.image.index.v1+json", bytes: Buffer.from("{}") };
        },
      } as unknown as Repository;
      return {
        policyName: name,
        scopeNames: [name],
        open: async (requestedBy?: RequestedBy) => {
          openedFor.push(requestedBy && { subject: requestedBy.subject, ...(requestedBy.tenant ? { tenant: requestedBy.tenant } : {}) });
          return repository;
        },
      };
    },
    catalog: async () => [],
    repositoriesHolding: async () => [],
  };
}

describe("digest resolution through the registry layer", () => {
  it("asks for the tag accepting indexes first, and returns the digest", async () => {
    const digest = Digest.of("sha256", "index");
    const registry = registryAnswering(async () => digest);
    assert.equal(await new DigestResolver(registry, new OpenAccess(), 1000).resolve("docker.io/library/nginx", "1.25", POD), digest);
    assert.deepEqual(registry.asked, [
      "docker.io/library/nginx:1.25 accept=application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json",
    ]);
    assert.deepEqual(registry.openedFor, [{ subject: "system:serviceaccount:team-a:default", tenant: "team-a" }], "the repository is opened for the pod's tenant, not for berth");
  });

  it("refuses, without asking the registry, a tag the pod's principal may not pull, naming no digest", async () => {
    const registry = registryAnswering(async () => Digest.of("sha256", "private"));
    const asked: [Principal, string, string][] = [];
    const access: AccessController = {
      authorize: async () => POD,
      allows: (principal, repository, action) => {
        asked.push([principal, repository, action]);
        return repository.startsWith("team-a/");
      },
    };
    await assert.rejects(new DigestResolver(registry, access, 1000).resolve("ghcr/team-b/app", "v1", POD), {
      message: "system:serviceaccount:team-a:default may not pull ghcr/team-b/app (auth.policy)",
    });
    assert.deepEqual(registry.asked, [], "nothing was fetched");
    assert.deepEqual(asked, [[POD, "ghcr/team-b/app", "pull"]]);
    assert.ok(await new DigestResolver(registry, access, 1000).resolve("team-a/app", "v1", POD));
  });

  it("gives the cause of an unknown registry error, not just 'unknown error'", async () => {
    const registry = registryAnswering(async () => {
      throw new RegistryError("UNKNOWN", undefined, undefined, { cause: new Error("ENOSPC: no space left on device") });
    });
    await assert.rejects(new DigestResolver(registry, new OpenAccess(), 1000).resolve("a/b", "v1", POD), { message: "unknown error: ENOSPC: no space left on device" });
  });

  it("gives up after its timeout while the lookup hangs", async () => {
    const registry = registryAnswering(() => new Promise<Digest>(() => undefined));
    await assert.rejects(new DigestResolver(registry, new OpenAccess(), 50).resolve("a/b", "v1", POD), { message: "no answer within 0.05s" });
  });
});
