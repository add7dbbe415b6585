import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeUpstream } from "../mirror/fake-upstream.js";
import { BerthProcess } from "../support/berth-process.js";
import { configBlob, errorCode, getVerified, http, imageManifest, pushBlob, putManifest, type HttpAnswer } from "./registry-client.js";
import { SmallDisk } from "./small-disk.js";
import { auditStore, sha256 } from "./store-audit.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** An OCI error answer with a clear storage code: the status berth chose and its error code. */
function assertStorageRefusal(answer: HttpAnswer, status: number, what: string): void {
  assert.equal(answer.status, status, `${what}: ${answer.status} ${answer.body.toString("utf8").slice(0, 200)}`);
  assert.equal(errorCode(answer), "UNAVAILABLE", `${what}: an OCI error body`);
}

describe("storage on a small real filesystem (8 MiB tmpfs)", () => {
  let disk: SmallDisk;
  let upstream: FakeUpstream;
  let berth: BerthProcess;
  const image = { config: configBlob("full-disk"), layer: randomBytes(256 * KiB) };
  let manifestDigest = "";

  before(async () => {
    disk = await SmallDisk.mount("8m");
    upstream = await new FakeUpstream().start();
    berth = await BerthProcess.start({
      storageDir: join(disk.path, "storage"),
      config: { upstreams: [{ host: upstream.host, url: upstream.url, prefix: "fake" }], cache: { collectInterval: 0 } },
    });
    for (const blob of [image.config, image.layer]) assert.equal((await pushBlob(berth.url, "team/app", blob)).status, 201);
    const manifest = imageManifest({ digest: sha256(image.config), size: image.config.length }, [{ digest: sha256(image.layer), size: image.layer.length }]);
    assert.equal((await putManifest(berth.url, "team/app", "v1", manifest)).status, 201);
    manifestDigest = sha256(manifest);
  });
  after(async () => {
    await berth?.close();
    await upstream?.stop();
    await disk?.remove();
  });

  /** What was pushed before the disk filled up is still served, byte for byte. */
  async function assertStoredContentServed(): Promise<void> {
    await getVerified(`${berth.url}/v2/team/app/manifests/v1`, manifestDigest, { accept: "application/vnd.oci.image.manifest.v1+json" });
    await getVerified(`${berth.url}/v2/team/app/blobs/${sha256(image.layer)}`, sha256(image.layer));
  }

  /** Nothing torn or half-written is left, and berth is still the same process. */
  async function assertStoreClean(): Promise<void> {
    assert.ok(berth.running, `berth died: ${berth.diagnostics()}`);
    const audit = await auditStore(berth.storageDir);
    assert.deepEqual(audit.problems, []);
    assert.deepEqual(await readdir(join(berth.storageDir, "_tmp")), [], "no temp file is left behind");
  }

  it("answers a monolithic push larger than the free space with 507 and an OCI error, and keeps nothing of it", async () => {
    const big = randomBytes(12 * MiB);
    const answer = await pushBlob(berth.url, "team/app", big).catch((err: Error) => err);
    assert.ok(!(answer instanceof Error), `the client must get an answer, not ${answer instanceof Error ? answer.message : ""}`);
    assertStorageRefusal(answer, 507, "POST ?digest= of 12 MiB");
    assert.equal((await http(`${berth.url}/v2/team/app/blobs/${sha256(big)}`, { method: "HEAD" })).status, 404);
    await assertStoredContentServed();
    await assertStoreClean();
  });

  it("answers a chunk that does not fit with 507, keeps the session at its last whole chunk, and completes it once space is freed", async () => {
    const data = randomBytes(3 * MiB);
    const started = await http(`${berth.url}/v2/team/app/blobs/uploads/`, { method: "POST" });
    assert.equal(started.status, 202);
    const location = String(started.headers.location);
    const first = data.subarray(0, MiB);
    const patch = (start: number, chunk: Buffer) =>
      http(`${berth.url}${location}`, { method: "PATCH", headers: { "content-range": `${start}-${start + chunk.length - 1}`, "content-length": chunk.length }, body: chunk });
    assert.equal((await patch(0, first)).status, 202);
    const filler = await disk.fill(512 * KiB);
    assertStorageRefusal(await patch(MiB, data.subarray(MiB)), 507, "PATCH of 2 MiB into 512 KiB");
    const status = await http(`${berth.url}${location}`);
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, `0-${MiB - 1}`, "the session continues after its last whole chunk");
    await assertStoredContentServed();
    await assertStoreClean();

    await rm(filler);
    assert.equal((await patch(MiB, data.subarray(MiB))).status, 202);
    assert.equal((await http(`${berth.url}${location}?digest=${sha256(data)}`, { method: "PUT" })).status, 201);
    await getVerified(`${berth.url}/v2/team/app/blobs/${sha256(data)}`, sha256(data));
  });

  it("answers a manifest push on a full disk with 507, and takes it once space is freed", async () => {
    const config = configBlob("full-disk-manifest");
    assert.equal((await pushBlob(berth.url, "team/app", config)).status, 201);
    const manifest = imageManifest({ digest: sha256(config), size: config.length }, [{ digest: sha256(image.layer), size: image.layer.length }]);
    const filler = await disk.fill(0);
    assertStorageRefusal(await putManifest(berth.url, "team/app", "v2", manifest), 507, "PUT manifest on a full disk");
    await assertStoredContentServed();
    await assertStoreClean();
    await rm(filler);
    assert.equal((await putManifest(berth.url, "team/app", "v2", manifest)).status, 201);
    await getVerified(`${berth.url}/v2/team/app/manifests/v2`, sha256(manifest), { accept: "application/vnd.oci.image.manifest.v1+json" });
  });

  it("answers a cold fetch larger than the free space with 507 before sending any of it, and serves it once it fits", async () => {
    const blob = randomBytes(4 * MiB);
    const digest = upstream.addBlob("team/cached", blob);
    const filler = await disk.fill(2 * MiB);
    const answer = await http(`${berth.url}/v2/fake/team/cached/blobs/${digest}`).catch((err: Error) => err);
    assert.ok(!(answer instanceof Error), `the client must get an answer, not a cut transfer (${answer instanceof Error ? answer.message : ""})`);
    assertStorageRefusal(answer, 507, "cold GET of 4 MiB into 2 MiB");
    await assertStoredContentServed();
    await assertStoreClean();
    await rm(filler);
    await getVerified(`${berth.url}/v2/fake/team/cached/blobs/${digest}`, digest);
    await assertStoreClean();
  });

  it("answers writes with 503 while the store is read-only, keeps serving reads, and takes writes again once it is writable", async () => {
    const blob = randomBytes(64 * KiB);
    await disk.remount("ro");
    try {
      assertStorageRefusal(await pushBlob(berth.url, "team/app", blob), 503, "POST on a read-only store");
      await assertStoredContentServed();
    } finally {
      await disk.remount("rw");
    }
    assert.equal((await pushBlob(berth.url, "team/app", blob)).status, 201);
    await getVerified(`${berth.url}/v2/team/app/blobs/${sha256(blob)}`, sha256(blob));
    await assertStoreClean();
  });
});
