import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { startMirror } from "../mirror/mirror-fixture.js";
import { copyToDir } from "../multiarch/origin-mirror.js";
import { buildImage, type BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { closedPort, lines, runBerth } from "./cli-fixture.js";

const AMD64 = { os: "linux", architecture: "amd64" };
const ARM64 = { os: "linux", architecture: "arm64", variant: "v8" };
const KiB = 1024;

type Mirror = Awaited<ReturnType<typeof startMirror>>;

describe("berth warm", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let image: BuiltImage;
  const berths: Mirror[] = [];
  const startBerth = async () => {
    const berth = await startMirror([{ host: origin.host, url: origin.url, prefix: "origin" }]);
    berths.push(berth);
    return berth;
  };
  const stored = async (berth: Mirror, digest: string) => {
    await berth.fills.settled();
    return (await berth.storage.blobs.size(Digest.parse(digest)!)) !== undefined;
  };
  const blobsOf = (platform: string) => image.manifests.filter((m) => m.platform.architecture === platform).flatMap((m) => [m.config.digest, ...m.layers.map((l) => l.digest)]);

  before(async () => {
    work = await makeTempDir("cli-warm");
    origin = await OriginRegistry.start();
    image = await buildImage(join(work.path, "layout"), { ref: "app", platforms: [AMD64, ARM64], layers: [{ size: 256 * KiB }, { size: 64 * KiB }] });
    await skopeoCopy(image.source, `docker://${origin.host}/team/app:v1`, { all: true, preserveDigests: true });
  });
  after(async () => {
    for (const berth of berths) await berth.stop();
    await origin?.close();
    await work?.remove();
  });

  it("pulls every platform's manifest and blobs into berth, so a pull succeeds with the origin gone", async () => {
    const berth = await startBerth();
    const ref = `${origin.host}/team/app:v1`;

    const cold = await runBerth(["warm", "--berth", berth.url, ref]);
    assert.equal(cold.code, 0, cold.stderr);
    const blobLines = lines(cold.stderr);
    assert.equal(blobLines.length, 6, "a line per blob (2 configs, 4 layers) when stderr is not a terminal");
    for (const line of blobLines) assert.match(line, /^sha256:[0-9a-f]{12} +\d+(\.\d)? (B|KiB) +fetched$/);
    assert.match(cold.stdout, new RegExp(`^warmed ${ref}@${image.digest}: 3 manifests, 6 blobs, [\\d.]+ KiB; 0 blobs \\(0 B\\) were already cached; \\d+\\.\\ds\\n$`));
    for (const digest of image.digests) assert.ok(await stored(berth, digest), `${digest} is in berth's store`);

    const warmAgain = await runBerth(["warm", "--berth", berth.url, ref], { tty: true });
    assert.equal(warmAgain.code, 0, warmAgain.stdout);
    assert.ok(warmAgain.stdout.includes("\x1b[?25l"), "on a terminal, progress bars take over the screen (the cursor is hidden)");
    assert.equal((warmAgain.stdout.match(/sha256:[0-9a-f]{12} +[\d.]+ (B|KiB) +cached/g) ?? []).length, 6);
    assert.match(warmAgain.stdout, /3 manifests, 6 blobs, [\d.]+ KiB; 6 blobs \([\d.]+ KiB\) were already cached/);

    await origin.stop();
    try {
      const pulled = await copyToDir(`docker://${new URL(berth.url).host}/origin/team/app:v1`, { all: true });
      assert.equal(pulled.manifestDigest, image.digest);
      assert.deepEqual([...pulled.instances.keys()].sort(), image.manifests.map((m) => m.digest).sort());
      for (const digest of pulled.blobs.keys()) assert.equal(pulled.blobs.get(digest), digest, "every blob arrived intact");
    } finally {
      await origin.restart();
    }
  });

  it("returns only once every blob it fetched is stored, not merely sent", async () => {
    const berth = await startBerth();
    // Storing a blob after its last byte went out takes a while here, as it does for a large blob on a slow disk.
    const blobs = berth.storage.blobs;
    const place = blobs.place.bind(blobs);
    blobs.place = async (pending, digest) => {
      await new Promise((resolve) => setTimeout(resolve, 400));
      await place(pending, digest);
    };

    const warmed = await runBerth(["warm", "--berth", berth.url, `${origin.host}/team/app:v1`, "--platform", "linux/amd64"]);
    assert.equal(warmed.code, 0, warmed.stderr);
    for (const digest of blobsOf("amd64")) assert.notEqual(await berth.storage.blobs.size(Digest.parse(digest)!), undefined, `${digest} was stored before warm returned`);
  });

  it("with --platform, warms only that platform's blobs", async () => {
    const berth = await startBerth();
    const result = await runBerth(["warm", "--berth", berth.url, "--platform", "linux/arm64", `${origin.host}/team/app:v1`]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /2 manifests, 3 blobs/);
    for (const digest of blobsOf("arm64")) assert.ok(await stored(berth, digest));
    for (const digest of blobsOf("amd64")) assert.ok(!(await stored(berth, digest)), `${digest} (amd64) was not fetched`);
  });

  it("fails, naming what the index offers, when no manifest matches --platform", async () => {
    const berth = await startBerth();
    const result = await runBerth(["warm", "--berth", berth.url, "--platform", "linux/s390x", `${origin.host}/team/app:v1`]);
    assert.equal(result.code, 1);
    assert.deepEqual(lines(result.stderr), [`berth warm: ${origin.host}/team/app:v1: ${origin.host}/team/app:v1 has no manifest for linux/s390x (it has linux/amd64, linux/arm64/v8)`]);
  });

  it("reports an image berth cannot find with exit 1 and one line, and warms the others", async () => {
    const berth = await startBerth();
    const missing = await runBerth(["warm", "--berth", berth.url, `${origin.host}/team/app:v9`]);
    assert.equal(missing.code, 1);
    assert.deepEqual(lines(missing.stderr), [`berth warm: ${origin.host}/team/app:v9: GET /v2/team/app/manifests/v9: 404 MANIFEST_UNKNOWN: manifest unknown to registry`]);

    const mixed = await runBerth(["warm", "--berth", berth.url, `${origin.host}/team/app:v9`, `${origin.host}/team/app:v1`]);
    assert.equal(mixed.code, 1);
    assert.match(mixed.stdout, /^warmed .*team\/app:v1@/);
    assert.match(mixed.stderr, /team\/app:v9: GET .* 404 MANIFEST_UNKNOWN/);
    assert.match(lines(mixed.stderr).at(-1)!, /^berth warm: 1 of 2 images not warmed$/);
  });

  it("refuses contradictory or malformed options with exit 2", async () => {
    const both = await runBerth(["warm", "--platform", "linux/amd64", "--all-platforms", "nginx"]);
    assert.equal(both.code, 2);
    assert.deepEqual(lines(both.stderr), ["berth warm: give --platform or --all-platforms, not both (berth warm --help)"]);
    const platform = await runBerth(["warm", "--platform", "amd64", "nginx"]);
    assert.equal(platform.code, 2);
    assert.match(platform.stderr, /--platform takes OS\/ARCH\[\/VARIANT\], not "amd64"/);
    const closed = await closedPort();
    const unreachable = await runBerth(["warm", "--berth", `http://127.0.0.1:${closed}`, "nginx"]);
    assert.equal(unreachable.code, 1);
    assert.deepEqual(lines(unreachable.stderr), [`berth warm: nginx: cannot reach berth at http://127.0.0.1:${closed}: connect ECONNREFUSED 127.0.0.1:${closed}`]);
  });
});
