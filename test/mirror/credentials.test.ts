import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeAuthFile } from "../support/auth-file.js";
import { BerthProcess } from "../support/berth-process.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { copyToDir, getManifest, mirrorOf, mismatchedBlobs, ORIGIN_PREFIX, ORIGIN_USER, OriginPublisher, startOrigin, type RunningOrigin } from "./real-origin.js";

const { username: USER, password: PASSWORD } = ORIGIN_USER;

/** Which credentials berth tries against an origin that refuses anonymous clients (config.json files, docs/design.md §5). */
function credentialsSuite(mode: "htpasswd" | "token"): void {
  describe(`berth's credentials for ${mode === "htpasswd" ? "an htpasswd" : "a token-auth"} origin`, () => {
    let work: TempDir;
    let running: RunningOrigin;
    let origin: OriginRegistry;
    let publisher: OriginPublisher;

    before(async () => {
      work = await makeTempDir(`mirror-credentials-${mode}`);
      running = await startOrigin(mode);
      origin = running.origin;
      publisher = new OriginPublisher(join(work.path, "layout"), origin, running.creds);
      await publisher.publish("private/single", "v1", { ref: "single", layers: [{ size: 4096 }], seed: `${mode}-single` });
    });
    after(async () => {
      await running?.close();
      await work?.remove();
    });

    it("the origin refuses anonymous pulls, so only a credential berth holds can fetch from it", async () => {
      await assert.rejects(copyToDir(`docker://${origin.host}/private/single:v1`), /unauthorized|authentication required|denied/i);
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
      if (running.issuer) {
        const tokenRequests = running.issuer.requests.filter((r) => r.scopes.includes("repository:private/tried-in-order:pull"));
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

credentialsSuite("htpasswd");
credentialsSuite("token");

describe("an htpasswd origin, which Distribution's own proxy cannot pull from", () => {
  it("berth pulls an image Distribution's proxy, given the same username and password, refuses", async (t) => {
    const work = await makeTempDir("mirror-credentials-contrast");
    t.after(() => work.remove());
    const running = await startOrigin("htpasswd");
    t.after(() => running.close());
    const { origin } = running;
    const image = await new OriginPublisher(join(work.path, "layout"), origin, running.creds).publish("private/app", "v1", { ref: "app", seed: "contrast" });
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
