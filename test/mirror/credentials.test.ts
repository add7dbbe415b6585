import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeAuthFile } from "../support/auth-file.js";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import type { BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry, type OriginAuth } from "../support/origin-registry.js";
import { Podman } from "../support/podman.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { TokenIssuer } from "../support/token-issuer.js";
import {
  AMD64,
  ARM64,
  blobPaths,
  closedLoopbackPort,
  copyToDir,
  getCounts,
  getManifest,
  mirrorOf,
  mismatchedBlobs,
  ORIGIN_PREFIX,
  OriginPublisher,
} from "./real-origin.js";

const USER = "puller";
const PASSWORD = "s3cret-pull";

/**
 * The same pulls against an origin that refuses anonymous clients, with the credential given
 * to berth alone, as a docker config.json under `upstreams[].credentials`; berth's own
 * clients pull anonymously.
 */
function authenticatedOriginSuite(mode: "htpasswd" | "token"): void {
  describe(`through berth from a ${mode} origin, with berth's credential in a config.json`, () => {
    let work: TempDir;
    let issuer: TokenIssuer | undefined;
    let origin: OriginRegistry;
    let berth: BerthProcess;
    let publisher: OriginPublisher;
    let single: BuiltImage;
    let multi: BuiltImage;

    before(async () => {
      work = await makeTempDir(`mirror-credentials-${mode}`);
      let auth: OriginAuth = { kind: "htpasswd", users: { [USER]: PASSWORD } };
      if (mode === "token") {
        issuer = await TokenIssuer.start({ users: { [USER]: PASSWORD } });
        auth = { kind: "token", issuer };
      }
      origin = await OriginRegistry.start({ auth });
      publisher = new OriginPublisher(join(work.path, "layout"), origin, `${USER}:${PASSWORD}`);
      single = await publisher.publish("private/single", "v1", { ref: "single", format: "docker", layers: [{ size: 48 * 1024 }], seed: `${mode}-single` });
      multi = await publisher.publish("private/multi", "v1", { ref: "multi", platforms: [AMD64, ARM64], layers: [{ size: 16 * 1024 }, { size: 1024 }], seed: `${mode}-multi` });
      const configJson = join(work.path, "config.json");
      await writeAuthFile(configJson, { [origin.host]: { username: USER, password: PASSWORD } });
      berth = await BerthProcess.start({ config: mirrorOf(origin, { credentials: [configJson] }) });
    });
    after(async () => {
      await berth?.close();
      await origin?.close();
      await issuer?.close();
      await work?.remove();
    });

    it("refuses anonymous pulls itself, so only berth's credential can fetch from it", async () => {
      await assert.rejects(copyToDir(`docker://${origin.host}/private/single:v1`), /unauthorized|authentication required|denied/i);
    });

    it("skopeo copies single- and multi-arch images through the prefix with the origin's digests, cold and warm, one origin GET per blob", async () => {
      for (const [name, image] of [["single", single], ["multi", multi]] as const) {
        for (const round of ["cold", "warm"]) {
          const copy = await copyToDir(`docker://${berth.host}/${ORIGIN_PREFIX}/private/${name}:v1`);
          assert.equal(copy.manifestDigest, image.digest, `${name} ${round}`);
          assert.deepEqual([...copy.digests].sort(), [...image.digests].sort(), `${name} ${round}`);
          assert.deepEqual(mismatchedBlobs(copy), [], `${name} ${round}`);
        }
        const paths = blobPaths(`private/${name}`, image);
        assert.deepEqual(await getCounts(origin, paths), paths.map(() => 1), name);
      }
    });

    it("ctr pulls the multi-arch image through a hosts.toml mirror (ns=ORIGIN) without credentials of its own, cold and after removing it", async (t) => {
      const containerd = await Containerd.start();
      t.after(() => containerd.close());
      await containerd.setHosts(origin.host, { server: origin.url, mirrors: [{ url: berth.url }] });
      const reference = `${origin.host}/private/multi:v1`;
      const arm64 = multi.manifests[1];
      for (const round of ["cold", "warm"]) {
        const pulled = await containerd.pull(reference, { platform: "linux/arm64/v8" });
        assert.equal(pulled.digest, multi.digest, round);
        for (const digest of [arm64.digest, arm64.config.digest, ...arm64.layers.map((l) => l.digest)]) assert.ok(pulled.contentDigests.includes(digest), `${round}: ${digest}`);
        await containerd.removeImage(reference);
      }
    });

    it("podman pulls both images through a registries.conf mirror whose registry location is unreachable, without credentials of its own", async (t) => {
      const unreachable = await closedLoopbackPort();
      const podman = await Podman.create([{ location: unreachable, mirrors: [{ location: `${berth.host}/${ORIGIN_PREFIX}` }] }]);
      t.after(() => podman.close());
      for (const round of ["cold", "warm"]) {
        assert.equal((await podman.pull(`${unreachable}/private/single:v1`)).digest, single.digest, `single ${round}`);
        assert.equal((await podman.pull(`${unreachable}/private/multi:v1`, { platform: "linux/amd64" })).digest, multi.digest, `multi ${round}`);
        await podman.removeAllImages();
      }
    });

    it("tries a wrong credential under the more specific key first, then the right one, and pulls", async (t) => {
      const image = await publisher.publish("private/tried-in-order", "v1", { ref: "tried-in-order", layers: [{ size: 4096 }], seed: `${mode}-tried-in-order` });
      const configJson = join(work.path, "wrong-first.json");
      await writeAuthFile(configJson, {
        [`${origin.host}/private/tried-in-order`]: { username: USER, password: "wrong" },
        [origin.host]: { username: USER, password: PASSWORD },
      });
      const ordered = await BerthProcess.start({ config: mirrorOf(origin, { credentials: [configJson] }) });
      t.after(() => ordered.close());

      const copy = await copyToDir(`docker://${ordered.host}/${ORIGIN_PREFIX}/private/tried-in-order:v1`);

      assert.equal(copy.manifestDigest, image.digest);
      assert.deepEqual(mismatchedBlobs(copy), []);
      if (issuer) {
        const tokenRequests = issuer.requests.filter((r) => r.scopes.includes("repository:private/tried-in-order:pull"));
        assert.deepEqual(tokenRequests.slice(0, 2).map((r) => [r.status, r.account]), [[401, undefined], [200, USER]], "the realm refused the wrong password, then issued to the right one");
      } else {
        const refused = (await origin.accessLog()).filter((e) => e.userAgent === "berth" && e.path === "/v2/private/tried-in-order/manifests/v1" && e.status === 401);
        assert.equal(refused.length, 2, "the origin refused berth without a credential, then with the wrong one");
      }
    });

    it("also tries the top-level credentials after the upstream's own, when the upstream's own are wrong", async (t) => {
      const image = await publisher.publish("private/top-level", "v1", { ref: "top-level", layers: [{ size: 4096 }], seed: `${mode}-top-level` });
      const wrong = join(work.path, "upstream-wrong.json");
      const right = join(work.path, "top-level-right.json");
      await writeAuthFile(wrong, { [origin.host]: { username: USER, password: "wrong" } });
      await writeAuthFile(right, { [origin.host]: { username: USER, password: PASSWORD } });
      const layered = await BerthProcess.start({ config: mirrorOf(origin, { credentials: [wrong] }, { credentials: [right] }) });
      t.after(() => layered.close());

      const answer = await getManifest(layered, `${ORIGIN_PREFIX}/private/top-level/manifests/v1`);

      assert.equal(answer.status, 200);
      assert.equal(answer.digest, image.digest);
    });

    it("answers DENIED, naming the upstream, when no credential is accepted", async (t) => {
      const wrong = join(work.path, "only-wrong.json");
      await writeAuthFile(wrong, { [origin.host]: { username: USER, password: "wrong" } });
      const refused = await BerthProcess.start({ config: mirrorOf(origin, { credentials: [wrong] }) });
      t.after(() => refused.close());

      const answer = await getManifest(refused, `${ORIGIN_PREFIX}/private/single/manifests/v1`);

      assert.equal(answer.status, 403);
      assert.equal(answer.code, "DENIED");
      assert.match(answer.message ?? "", new RegExp(origin.host.replace(/\./g, "\\.")));
    });
  });
}

authenticatedOriginSuite("htpasswd");
authenticatedOriginSuite("token");

describe("an htpasswd origin, which Distribution's own proxy cannot pull from", () => {
  it("berth pulls an image Distribution's proxy, given the same username and password, refuses", async (t) => {
    const work = await makeTempDir("mirror-credentials-contrast");
    t.after(() => work.remove());
    const origin = await OriginRegistry.start({ auth: { kind: "htpasswd", users: { [USER]: PASSWORD } } });
    t.after(() => origin.close());
    const image = await new OriginPublisher(join(work.path, "layout"), origin, `${USER}:${PASSWORD}`).publish("private/app", "v1", { ref: "app", seed: "contrast" });
    const proxy = await OriginRegistry.start({ proxy: { remoteUrl: origin.url, username: USER, password: PASSWORD } });
    t.after(() => proxy.close());
    const configJson = join(work.path, "config.json");
    await writeAuthFile(configJson, { [origin.host]: { username: USER, password: PASSWORD } });
    const berth = await BerthProcess.start({ config: mirrorOf(origin, { credentials: [configJson] }) });
    t.after(() => berth.close());

    // Distribution keeps upstream credentials for Bearer realms only: to a Basic upstream it is anonymous, and the tag is "unknown".
    await assert.rejects(skopeoCopy(`docker://${proxy.host}/private/app:v1`, `dir:${join(work.path, "from-proxy")}`), /manifest unknown/);
    assert.equal((await copyToDir(`docker://${berth.host}/${ORIGIN_PREFIX}/private/app:v1`)).manifestDigest, image.digest);
  });
});
