import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { startMirror } from "../mirror/mirror-fixture.js";
import { buildImage, type BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { lines, runBerth } from "./cli-fixture.js";

type Mirror = Awaited<ReturnType<typeof startMirror>>;

describe("berth resolve", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let app: BuiltImage;
  let tool: BuiltImage;
  let berth: Mirror;

  before(async () => {
    work = await makeTempDir("cli-resolve");
    origin = await OriginRegistry.start();
    const layout = join(work.path, "layout");
    app = await buildImage(layout, { ref: "app", platforms: [{ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "arm64" }] });
    tool = await buildImage(layout, { ref: "tool" });
    await skopeoCopy(app.source, `docker://${origin.host}/team/app:v1`, { all: true, preserveDigests: true });
    await skopeoCopy(tool.source, `docker://${origin.host}/team/tool:latest`, { preserveDigests: true });
    berth = await startMirror([{ host: origin.host, url: origin.url, prefix: "origin" }]);
  });
  after(async () => {
    await berth?.stop();
    await origin?.close();
    await work?.remove();
  });

  it("prints IMAGE@digest for each image, in order, a multi-arch tag resolving to its index", async () => {
    const images = [`${origin.host}/team/tool`, `${origin.host}/team/app:v1`, `${origin.host}/team/app@${app.digest}`];
    const result = await runBerth(["resolve", "--berth", berth.url, ...images]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    assert.deepEqual(lines(result.stdout), [`${images[0]}@${tool.digest}`, `${images[1]}@${app.digest}`, images[2]]);
  });

  it("resolves an image that names berth itself, through the upstream's path prefix", async () => {
    const image = `${new URL(berth.url).host}/origin/team/app:v1`;
    const result = await runBerth(["resolve", "--berth", berth.url, image]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${image}@${app.digest}\n`);
  });

  it("fails with one line naming the image berth cannot resolve, still printing the others", async () => {
    const one = await runBerth(["resolve", "--berth", berth.url, `${origin.host}/team/app:v9`]);
    assert.equal(one.code, 1);
    assert.deepEqual(lines(one.stderr), [`berth resolve: ${origin.host}/team/app:v9: GET /v2/team/app/manifests/v9: 404 MANIFEST_UNKNOWN: manifest unknown to registry`]);

    const several = await runBerth(["resolve", "--berth", berth.url, `${origin.host}/team/app:v9`, `${origin.host}/team/app:v1`, "quay.io/team/app:v1"]);
    assert.equal(several.code, 1);
    assert.deepEqual(lines(several.stdout), [`${origin.host}/team/app:v1@${app.digest}`]);
    assert.deepEqual(lines(several.stderr), [
      `berth resolve: ${origin.host}/team/app:v9: GET /v2/team/app/manifests/v9: 404 MANIFEST_UNKNOWN: manifest unknown to registry`,
      "berth resolve: quay.io/team/app:v1: GET /v2/team/app/manifests/v1: 404 NAME_UNKNOWN: berth mirrors no upstream quay.io",
      "berth resolve: 2 of 3 images not resolved",
    ]);
  });

  it("refuses a malformed image or no image with exit 2", async () => {
    const malformed = await runBerth(["resolve", "Team/App:v1"]);
    assert.equal(malformed.code, 2);
    assert.deepEqual(lines(malformed.stderr), ["berth resolve: invalid image reference \"Team/App:v1\": repository names must be lowercase (berth resolve --help)"]);
    const none = await runBerth(["resolve"]);
    assert.equal(none.code, 2);
    assert.deepEqual(lines(none.stderr), ["berth resolve: resolve needs at least one IMAGE (berth resolve --help)"]);
  });

  it("gets a token from a berth in token mode, with --username and BERTH_PASSWORD", async (t) => {
    const tokenBerth = await startMirror([{ host: origin.host, url: origin.url, prefix: "origin" }], {
      auth: {
        mode: "token",
        users: [{ username: "ci", passwordHash: bcrypt.hashSync("ci-secret", 4) }],
        policy: [{ subjects: ["ci"], repositories: ["**"], actions: ["pull"] }],
      },
    });
    t.after(() => tokenBerth.stop());
    const image = `${origin.host}/team/app:v1`;
    const allowed = await runBerth(["resolve", "--berth", tokenBerth.url, "--username", "ci", image], { env: { BERTH_PASSWORD: "ci-secret" } });
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(allowed.stdout, `${image}@${app.digest}\n`);

    const anonymous = await runBerth(["resolve", "--berth", tokenBerth.url, image]);
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /^berth resolve: .*team\/app:v1: GET \/v2\/team\/app\/manifests\/v1: 401/);
    const noPassword = await runBerth(["resolve", "--berth", tokenBerth.url, "--username", "ci", image], { env: { BERTH_PASSWORD: undefined } });
    assert.equal(noPassword.code, 2);
    assert.match(noPassword.stderr, /--username needs --password-file or BERTH_PASSWORD/);
  });
});
