import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { buildImage, MEDIA_TYPES, type BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { TokenIssuer } from "../support/token-issuer.js";
import { AMD64, ARM64, CONTAINERD_ACCEPT, copyToDir, errorCode, fetchManifest, mirroring } from "./origin-mirror.js";

const PUSHER = { username: "pusher", password: "push-s3cret" };

/**
 * Docker Hub answers 401, not 404, for a repository that does not exist (anonymous or not):
 * the -$(ARCH) bridge must still find `pause-arm64:3.9` in `pause:3.9`'s index, and build
 * `sync:3.9` from the `sync-<arch>:3.9` that exist. The origin here does the same: Distribution
 * in token mode, whose issuer grants anonymous pulls only on repositories that exist, so every
 * other repository is a 401 after the token exchange.
 */
describe("-$(ARCH) fallbacks against an origin that answers 401 for repositories that do not exist, as Docker Hub does", () => {
  let work: TempDir;
  let issuer: TokenIssuer;
  let origin: OriginRegistry;
  let berth: BerthProcess;
  let pause: BuiltImage;
  let sync: BuiltImage;
  /** Repositories anyone may pull; `private` ones exist but are refused to anonymous clients. */
  const published = new Set<string>();

  before(async () => {
    work = await makeTempDir("multiarch-refusing");
    issuer = await TokenIssuer.start({
      users: { [PUSHER.username]: PUSHER.password },
      grant: (account, repository, actions) => (account ? actions : published.has(repository) ? actions.filter((a) => a === "pull") : []),
    });
    origin = await OriginRegistry.start({ auth: { kind: "token", issuer } });
    const creds = `${PUSHER.username}:${PUSHER.password}`;
    pause = await buildImage(join(work.path, "pause"), { ref: "pause", platforms: [AMD64, ARM64], seed: "refusing-pause" });
    await skopeoCopy(pause.source, `docker://${origin.host}/pause:3.9`, { all: true, preserveDigests: true, destCreds: creds });
    published.add("pause");
    sync = await buildImage(join(work.path, "sync"), { ref: "sync", platforms: [AMD64, ARM64], archRefs: true, seed: "refusing-sync" });
    for (const manifest of sync.manifests) {
      const repository = `sync-${manifest.platform.architecture}`;
      await skopeoCopy(manifest.source!, `docker://${origin.host}/${repository}:3.9`, { preserveDigests: true, destCreds: creds });
      published.add(repository);
    }
    // Exists, but only for the pusher: anonymous clients are refused it like a missing one.
    await skopeoCopy(pause.source, `docker://${origin.host}/secret:1`, { all: true, preserveDigests: true, destCreds: creds });
    berth = await BerthProcess.start({ config: mirroring(origin) });
  });
  after(async () => {
    await berth?.close();
    await origin?.close();
    await issuer?.close();
    await work?.remove();
  });

  it("the origin does answer 401 for a repository that does not exist", async () => {
    const token = issuer.issueToken(undefined, []);
    const response = await fetch(`${origin.url}/v2/pause-arm64/manifests/3.9`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(response.status, 401);
  });

  it("serves pause-arm64:3.9 from the arm64 entry of pause:3.9's index, blobs included (skopeo)", async () => {
    const arm64 = pause.manifests[1];
    const response = await fetchManifest(berth.url, "origin/pause-arm64/manifests/3.9", CONTAINERD_ACCEPT);
    assert.equal(response.status, 200, response.bytes.toString("utf8"));
    assert.equal(response.digest, arm64.digest);
    assert.equal(response.headers.get("berth-fallback"), "index-entry; from=origin/pause:3.9");

    const copied = await copyToDir(`docker://${berth.host}/origin/pause-arm64:3.9`, { overrideArch: "arm64" });
    assert.equal(copied.manifestDigest, arm64.digest);
    for (const [name, contentDigest] of copied.blobs) assert.equal(contentDigest, name, `blob ${name} content`);
  });

  it("synthesizes sync:3.9 from the sync-<arch>:3.9 that exist, skipping the architectures refused like missing ones", async () => {
    const response = await fetchManifest(berth.url, `sync/manifests/3.9?ns=${origin.host}`, CONTAINERD_ACCEPT);
    assert.equal(response.status, 200, response.bytes.toString("utf8"));
    assert.equal(response.mediaType, MEDIA_TYPES.ociIndex);
    const index = JSON.parse(response.bytes.toString("utf8")) as { manifests: { digest: string }[] };
    assert.deepEqual(
      index.manifests.map((m) => m.digest),
      sync.manifests.map((m) => m.digest),
    );
  });

  it("keeps the origin's refusal when the bridge finds nothing the client may read: secret-arm64:1 is not served from a refused secret:1", async () => {
    const response = await fetchManifest(berth.url, "origin/secret-arm64/manifests/1", CONTAINERD_ACCEPT);
    assert.equal(response.status, 403);
    assert.equal(errorCode(response), "DENIED");
    const direct = await fetchManifest(berth.url, "origin/secret/manifests/1", CONTAINERD_ACCEPT);
    assert.equal(direct.status, 403, "secret:1 itself stays refused");
  });
});
