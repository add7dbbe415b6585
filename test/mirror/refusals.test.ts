import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import { buildImage, type BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { accessLogMark, getManifest, mirrorOf, ORIGIN_PREFIX, OriginPublisher } from "./real-origin.js";

describe("what berth refuses to do with mirrored names", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let berth: BerthProcess;
  let image: BuiltImage;

  before(async () => {
    work = await makeTempDir("mirror-refusals");
    origin = await OriginRegistry.start();
    berth = await BerthProcess.start({ config: mirrorOf(origin) });
    image = await buildImage(join(work.path, "layout"), { ref: "app", layers: [{ size: 4096 }], seed: "refusals" });
  });
  after(async () => {
    await berth?.close();
    await origin?.close();
    await work?.remove();
  });

  it("refuses skopeo's push to docker://BERTH/origin/x:y with UNSUPPORTED, and nothing reaches the origin", async () => {
    const mark = await accessLogMark(origin);

    await assert.rejects(skopeoCopy(image.source, `docker://${berth.host}/${ORIGIN_PREFIX}/x:y`), /unsupported/i);

    const writes = (await origin.accessLog()).slice(mark).filter((e) => !["GET", "HEAD"].includes(e.method));
    assert.deepEqual(writes, [], "berth wrote nothing to the origin");
    assert.equal((await getManifest(berth, `${ORIGIN_PREFIX}/x/manifests/y`)).code, "MANIFEST_UNKNOWN");
  });

  it("answers upload and manifest PUT requests to a mirrored name with 405 UNSUPPORTED", async () => {
    const upload = await fetch(`${berth.url}/v2/${ORIGIN_PREFIX}/x/blobs/uploads/`, { method: "POST" });
    const manifest = await fetch(`${berth.url}/v2/${ORIGIN_PREFIX}/x/manifests/y`, {
      method: "PUT",
      headers: { "Content-Type": image.mediaType },
      body: JSON.stringify({ schemaVersion: 2 }),
    });

    for (const response of [upload, manifest]) {
      assert.equal(response.status, 405);
      const body = (await response.json()) as { errors: { code: string }[] };
      assert.equal(body.errors[0].code, "UNSUPPORTED");
    }
  });

  it("answers ?ns= naming a registry it does not mirror with 404 NAME_UNKNOWN", async () => {
    const answer = await getManifest(berth, "team/app/manifests/v1", "ns=registry.invalid%3A5000");
    const blob = await fetch(`${berth.url}/v2/team/app/blobs/${image.digest}?ns=registry.invalid%3A5000`);

    assert.equal(answer.status, 404);
    assert.equal(answer.code, "NAME_UNKNOWN");
    assert.equal(blob.status, 404);
    assert.equal(((await blob.json()) as { errors: { code: string }[] }).errors[0].code, "NAME_UNKNOWN");
  });

  it("so containerd, told NAME_UNKNOWN for a registry berth does not mirror, pulls from that registry itself", async (t) => {
    const other = await OriginRegistry.start();
    t.after(() => other.close());
    const published = await new OriginPublisher(join(work.path, "other-layout"), other).publish("team/app", "v1", { ref: "other", seed: "refusals-other" });
    const containerd = await Containerd.start();
    t.after(() => containerd.close());
    await containerd.setHosts(other.host, { server: other.url, mirrors: [{ url: berth.url }] });

    const pulled = await containerd.pull(`${other.host}/team/app:v1`);

    assert.equal(pulled.digest, published.digest);
    assert.ok((await other.accessLog()).some((e) => e.userAgent.startsWith("containerd/") && e.path === "/v2/team/app/manifests/v1"), "containerd asked the registry itself");
  });
});
