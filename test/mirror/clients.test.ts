import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeAuthFile } from "../support/auth-file.js";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import type { BuiltImage, ImageSpec } from "../support/oci-image-builder.js";
import type { OriginRegistry } from "../support/origin-registry.js";
import { Podman } from "../support/podman.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import {
  accessLogMark,
  AMD64,
  ARM64,
  blobPaths,
  closedLoopbackPort,
  copyToDir,
  getCounts,
  mirrorOf,
  mismatchedBlobs,
  ORIGIN_PREFIX,
  ORIGIN_USER,
  OriginPublisher,
  requestsNotFromBerth,
  startOrigin,
  type RunningOrigin,
  type OriginMode,
} from "./real-origin.js";

/** A single-platform Docker schema2 image and a two-platform OCI index, each with content of its own. */
function imagePair(name: string): { single: ImageSpec; multi: ImageSpec } {
  return {
    single: { ref: `${name}-single`, format: "docker", layers: [{ size: 64 * 1024 }, { size: 1024 }], seed: `${name}-single` },
    multi: { ref: `${name}-multi`, platforms: [AMD64, ARM64], layers: [{ size: 32 * 1024 }, { size: 2048 }], seed: `${name}-multi` },
  };
}

const ORIGINS: Record<OriginMode, string> = {
  anonymous: "an anonymous origin",
  htpasswd: "an htpasswd (Basic) origin, berth's credential in a docker config.json",
  token: "a token-auth origin, berth's credential in a docker config.json",
};

/**
 * Every client pulls through berth without credentials of its own: for an authenticated
 * origin only berth holds one, as a config.json under `upstreams[].credentials`.
 */
function clientsSuite(mode: OriginMode): void {
  describe(`through berth from ${ORIGINS[mode]}: real clients get the origin's digests, cold and warm`, () => {
    let work: TempDir;
    let running: RunningOrigin;
    let origin: OriginRegistry;
    let berth: BerthProcess;
    let publisher: OriginPublisher;

    before(async () => {
      work = await makeTempDir(`mirror-clients-${mode}`);
      running = await startOrigin(mode);
      origin = running.origin;
      publisher = new OriginPublisher(join(work.path, "layout"), origin, running.creds);
      const credentials: string[] = [];
      if (mode !== "anonymous") {
        credentials.push(join(work.path, "config.json"));
        await writeAuthFile(credentials[0], { [origin.host]: ORIGIN_USER });
      }
      berth = await BerthProcess.start({ config: mirrorOf(origin, { credentials }) });
    });
    after(async () => {
      await berth?.close();
      await running?.close();
      await work?.remove();
    });

    /** Pushes both images of a pair to `<name>/single:v1` and `<name>/multi:v1`. */
    async function publishPair(name: string): Promise<{ single: BuiltImage; multi: BuiltImage }> {
      const specs = imagePair(name);
      return { single: await publisher.publish(`${name}/single`, "v1", specs.single), multi: await publisher.publish(`${name}/multi`, "v1", specs.multi) };
    }

    it("skopeo copies single- and multi-arch images from docker://BERTH/origin/REPO:TAG byte for byte, fetching each blob from the origin once", async () => {
      const images = await publishPair("skopeo-prefix");
      for (const [kind, image] of Object.entries(images)) {
        const repository = `skopeo-prefix/${kind}`;
        for (const round of ["cold", "warm"]) {
          const copy = await copyToDir(`docker://${berth.host}/${ORIGIN_PREFIX}/${repository}:v1`);
          assert.equal(copy.manifestDigest, image.digest, `${kind} ${round}: top-level digest`);
          assert.deepEqual([...copy.digests].sort(), [...image.digests].sort(), `${kind} ${round}: every digest`);
          assert.deepEqual(mismatchedBlobs(copy), [], `${kind} ${round}: blob content`);
          const paths = blobPaths(repository, image);
          assert.deepEqual(await getCounts(origin, paths), paths.map(() => 1), `${kind} ${round}: one origin GET per blob`);
        }
      }
    });

    it("skopeo copies through a --registries-conf mirror of the origin host: berth serves it, skopeo never asks the origin", async () => {
      const images = await publishPair("skopeo-mirror");
      const published = await accessLogMark(origin);
      const registriesConf = join(work.path, "skopeo-registries.conf");
      await writeFile(
        registriesConf,
        ["[[registry]]", `location = "${origin.host}"`, "insecure = true", "", "[[registry.mirror]]", `location = "${berth.host}/${ORIGIN_PREFIX}"`, "insecure = true", ""].join("\n"),
      );
      for (const [kind, image] of Object.entries(images)) {
        const repository = `skopeo-mirror/${kind}`;
        for (const round of ["cold", "warm"]) {
          const copy = await copyToDir(`docker://${origin.host}/${repository}:v1`, { registriesConf });
          assert.equal(copy.manifestDigest, image.digest, `${kind} ${round}: top-level digest`);
          assert.deepEqual([...copy.digests].sort(), [...image.digests].sort(), `${kind} ${round}: every digest`);
          assert.deepEqual(mismatchedBlobs(copy), [], `${kind} ${round}: blob content`);
        }
        const paths = blobPaths(repository, image);
        assert.deepEqual(await getCounts(origin, paths), paths.map(() => 1), `${kind}: one origin GET per blob, by berth`);
        assert.deepEqual(await requestsNotFromBerth(origin, repository, published), [], `${kind}: skopeo never fell back to the origin`);
      }
    });

    it("ctr pulls through a hosts.toml mirror (ns=ORIGIN) every platform's image with the origin's digests, and again after removing it", async (t) => {
      const images = await publishPair("ctr");
      const published = await accessLogMark(origin);
      const containerd = await Containerd.start();
      t.after(() => containerd.close());
      await containerd.setHosts(origin.host, { server: origin.url, mirrors: [{ url: berth.url }] });

      const pulls: { kind: string; image: BuiltImage; platform: string; manifest: number }[] = [
        { kind: "single", image: images.single, platform: "linux/amd64", manifest: 0 },
        { kind: "multi", image: images.multi, platform: "linux/amd64", manifest: 0 },
        { kind: "multi", image: images.multi, platform: "linux/arm64/v8", manifest: 1 },
      ];
      for (const { kind, image, platform, manifest } of pulls) {
        const reference = `${origin.host}/ctr/${kind}:v1`;
        const wanted = image.manifests[manifest];
        for (const round of ["cold", "warm"]) {
          const pulled = await containerd.pull(reference, { platform });
          assert.equal(pulled.digest, image.digest, `${kind} ${platform} ${round}: the origin's top-level digest`);
          for (const digest of [wanted.digest, wanted.config.digest, ...wanted.layers.map((l) => l.digest)]) {
            assert.ok(pulled.contentDigests.includes(digest), `${kind} ${platform} ${round}: fetched ${digest}`);
          }
          await containerd.removeImage(reference);
        }
      }
      for (const [kind, image] of Object.entries(images)) {
        const paths = blobPaths(`ctr/${kind}`, image);
        assert.deepEqual(await getCounts(origin, paths), paths.map(() => 1), `${kind}: one origin GET per blob, by berth`);
        assert.deepEqual(await requestsNotFromBerth(origin, `ctr/${kind}`, published), [], `${kind}: containerd never went to the origin itself`);
      }
    });

    it("podman pulls through a registries.conf mirror BERTH/origin whose registry location is unreachable, cold and after removing every image", async (t) => {
      const images = await publishPair("podman");
      const unreachable = await closedLoopbackPort();
      const podman = await Podman.create([{ location: unreachable, mirrors: [{ location: `${berth.host}/${ORIGIN_PREFIX}` }] }]);
      t.after(() => podman.close());

      const pulls = [
        { kind: "single", image: images.single, platform: "linux/amd64", architecture: "amd64" },
        { kind: "multi", image: images.multi, platform: "linux/arm64/v8", architecture: "arm64" },
      ];
      for (const round of ["cold", "warm"]) {
        for (const { kind, image, platform, architecture } of pulls) {
          const pulled = await podman.pull(`${unreachable}/podman/${kind}:v1`, { platform });
          assert.equal(pulled.digest, image.digest, `${kind} ${round}: the origin's top-level digest`);
          assert.equal(pulled.architecture, architecture, `${kind} ${round}: architecture`);
        }
        await podman.removeAllImages();
      }
      const arm64 = images.multi.manifests[1];
      const pulledPaths = [...blobPaths("podman/single", images.single), ...[arm64.config.digest, ...arm64.layers.map((l) => l.digest)].map((d) => `/v2/podman/multi/blobs/${d}`)];
      assert.deepEqual(await getCounts(origin, pulledPaths), pulledPaths.map(() => 1), "one origin GET per blob podman needed");
    });
  });
}

clientsSuite("anonymous");
clientsSuite("htpasswd");
clientsSuite("token");
