import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { auditStore, s3View, sha256 } from "../reliability/store-audit.js";
import { Replicas } from "../support/replicas.js";
import { rawS3Client, swiftS3 } from "../support/swift-s3.js";
import { CreateMultipartUploadCommand, HeadObjectCommand, ListMultipartUploadsCommand, UploadPartCommand } from "@aws-sdk/client-s3";

/** Collection as often as berth allows, on minAge 0: only pins and the journal keep a blob being pushed. */
const CONFIG = { cache: { collectInterval: "1s", minAge: "0" } };
const COORDINATION = { collection: { pinTTL: "2s", listingLag: "1s" } };
const MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";

interface Image {
  /** The replica it was pushed through and is deleted through. */
  url: string;
  repository: string;
  manifest: string;
  manifestBytes: Buffer;
  blobs: Map<string, Buffer>;
}

async function metric(url: string, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `) || (labels === "" && l.startsWith(`${name} `)));
  return line ? Number(line.split(" ").pop()) : 0;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await delay(250);
  }
}

async function pushBlob(url: string, repository: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const response = await fetch(`${url}/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: "POST", body: new Uint8Array(bytes), headers: { "content-type": "application/octet-stream" } });
  assert.equal(response.status, 201, `blob push to ${url}: ${response.status} ${await response.text()}`);
  return digest;
}

/**
 * Pushes a one-layer image through one replica. (Its repository is written through that replica
 * only: what one replica's index still holds of another's writes to the same names is the
 * shared ObjectIndex's matter, not collection's.)
 */
async function pushImage(url: string, repository: string, layerBytes: Buffer): Promise<Image> {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, nonce: randomBytes(8).toString("hex") }));
  const blobs = new Map<string, Buffer>();
  const configDigest = await pushBlob(url, repository, config);
  blobs.set(configDigest, config);
  const layer = await pushBlob(url, repository, layerBytes);
  blobs.set(layer, layerBytes);
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size: layerBytes.length }],
    }),
  );
  const manifest = sha256(manifestBytes);
  const response = await fetch(`${url}/v2/${repository}/manifests/${manifest}`, { method: "PUT", body: new Uint8Array(manifestBytes), headers: { "content-type": MANIFEST_TYPE } });
  assert.equal(response.status, 201, `manifest push: ${response.status} ${await response.text()}`);
  return { url, repository, manifest, manifestBytes, blobs };
}

/** The replica that has collected. */
async function leaderUrl(replicas: Replicas): Promise<string> {
  const collected = await Promise.all(replicas.urls.map((url) => metric(url, "berth_collections_total")));
  return replicas.urls[collected.findIndex((n) => n > 0)];
}

/** GETs a blob; a 200 must carry every byte of it (no read cut), whatever collection does meanwhile. */
async function pull(url: string, repository: string, digest: string, bytes: Buffer): Promise<number> {
  const response = await fetch(`${url}/v2/${repository}/blobs/${digest}`);
  if (response.status !== 200) {
    await response.body?.cancel();
    return response.status;
  }
  const body = Buffer.from(await response.arrayBuffer());
  assert.equal(body.length, bytes.length, `${url} cut ${repository}@${digest} at ${body.length} of ${bytes.length} bytes`);
  assert.equal(sha256(body), digest);
  return 200;
}

describe("content collection on three replicas", () => {
  let replicas: Replicas;

  before(async () => {
    replicas = await Replicas.start({ count: 3, config: CONFIG, coordination: COORDINATION });
  });
  after(() => replicas?.close());

  it("runs on one leader only; the others skip it", async () => {
    await until("a replica has collected twice", async () => (await Promise.all(replicas.urls.map((url) => metric(url, "berth_collections_total")))).some((n) => n >= 2));
    const collected = await Promise.all(replicas.urls.map((url) => metric(url, "berth_collections_total")));
    assert.equal(collected.filter((n) => n > 0).length, 1, `collections per replica: ${collected}`);
    for (const [i, url] of replicas.urls.entries()) {
      if (collected[i] === 0) assert.ok((await metric(url, "berth_collections_skipped_total", '{reason="not-leader"}')) > 0, url);
      // On demand too: a replica that does not lead answers that it skipped.
      const report = (await (await fetch(`${url}/admin/gc`, { method: "POST" })).json()) as { skipped?: string };
      assert.equal(report.skipped, collected[i] === 0 ? "not-leader" : undefined, url);
    }
  });

  it("aborts an abandoned multipart upload on the leader only, and never one of an upload session another replica holds", async () => {
    const s3 = rawS3Client(await swiftS3());
    const leader = await leaderUrl(replicas);
    const holder = replicas.urls.find((url) => url !== leader)!;
    const abandoned = await s3.send(new CreateMultipartUploadCommand({ Bucket: replicas.bucket, Key: "_tmp/abandoned" }));
    await s3.send(new UploadPartCommand({ Bucket: replicas.bucket, Key: "_tmp/abandoned", UploadId: abandoned.UploadId, PartNumber: 1, Body: randomBytes(1024) }));
    // A session on another replica, one part (6 MiB) in its multipart upload.
    const bytes = randomBytes(6 * 1024 * 1024);
    const started = await fetch(`${holder}/v2/team/chunked/blobs/uploads/`, { method: "POST" });
    assert.equal(started.status, 202);
    const location = new URL(started.headers.get("location")!, holder);
    const patched = await fetch(location, { method: "PATCH", body: new Uint8Array(bytes), headers: { "content-type": "application/octet-stream" } });
    assert.equal(patched.status, 202);
    const uploads = async () => (await s3.send(new ListMultipartUploadsCommand({ Bucket: replicas.bucket }))).Uploads ?? [];
    await until("the abandoned upload is aborted", async () => !(await uploads()).some((u) => u.UploadId === abandoned.UploadId));
    const collections = await metric(leader, "berth_collections_total");
    await until("the leader collected twice more", async () => (await metric(leader, "berth_collections_total")) >= collections + 2);
    assert.ok((await uploads()).some((u) => /\/data(-[0-9a-f]{16})?$/.test(u.Key ?? "")), "the session's multipart upload was aborted");
    for (const url of replicas.urls) assert.equal(await metric(url, "berth_s3_multipart_uploads_aborted_total"), url === leader ? 1 : 0, url);
    const session = new URL(patched.headers.get("location")!, holder);
    session.searchParams.set("digest", sha256(bytes));
    const done = await fetch(session, { method: "PUT" });
    assert.equal(done.status, 201, await done.text());
    assert.equal(await pull(replicas.next(), "team/chunked", sha256(bytes), bytes), 200);
  });

  it("keeps a blob another replica linked again where the leader had deleted its link", async () => {
    const leader = await leaderUrl(replicas);
    const other = replicas.urls.find((url) => url !== leader)!;
    const bytes = randomBytes(32 * 1024);
    const digest = await pushBlob(leader, "team/relinked", bytes);
    assert.equal((await fetch(`${leader}/v2/team/relinked/blobs/${digest}`, { method: "DELETE" })).status, 202);
    await pushBlob(other, "team/relinked", bytes);
    // Past the journal's window: only the link itself keeps the blob now.
    const collections = await metric(leader, "berth_collections_total");
    await delay(4000);
    await until("the leader collected twice more", async () => (await metric(leader, "berth_collections_total")) >= collections + 2);
    assert.equal(await pull(other, "team/relinked", digest, bytes), 200);
  });

  it("never cuts a read on another replica while the leader collects its blob, and collects it once the read is over", async () => {
    const leader = await leaderUrl(replicas);
    const other = replicas.urls.find((url) => url !== leader)!;
    const bytes = randomBytes(16 * 1024 * 1024); // several parts: on Swift, segments a delete would pull from under the read
    const digest = await pushBlob(leader, "team/read-while-collected", bytes);
    const response = await fetch(`${other}/v2/team/read-while-collected/blobs/${digest}`);
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const chunks: Uint8Array[] = [(await reader.read()).value!];
    assert.equal((await fetch(`${leader}/v2/team/read-while-collected/blobs/${digest}`, { method: "DELETE" })).status, 202);
    // The read stalls past the journal's window while the leader collects the now unlinked blob.
    const collections = await metric(leader, "berth_collections_total");
    await delay(4500);
    await until("the leader collected three times more", async () => (await metric(leader, "berth_collections_total")) >= collections + 3);
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) chunks.push(chunk.value);
    const body = Buffer.concat(chunks);
    assert.equal(body.length, bytes.length, `the read was cut at ${body.length} of ${bytes.length} bytes`);
    assert.equal(sha256(body), digest);
    const s3 = rawS3Client(await swiftS3());
    const stored = () =>
      s3.send(new HeadObjectCommand({ Bucket: replicas.bucket, Key: `blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}` })).then(
        () => true,
        () => false,
      );
    await until("the blob is collected once nobody reads it", async () => !(await stored()));
  });

  it("loses nothing, leaves nothing dangling and cuts no read while pushes, deletes, mounts and pulls run on every replica", async () => {
    const live: Image[] = [];
    const mounted: { url: string; repository: string; digest: string; bytes: Buffer }[] = [];
    const deletedLayers: Buffer[] = [];
    let sequence = 0;
    let cut = 0;
    const pick = <T>(list: T[]): T | undefined => (list.length === 0 ? undefined : list[randomInt(list.length)]);
    const take = <T>(list: T[]): T | undefined => (list.length === 0 ? undefined : list.splice(randomInt(list.length), 1)[0]);
    const steps: Record<string, (replica: number) => Promise<void>> = {
      push: async (replica) => {
        // A layer deleted earlier comes back now and then: its blob may be doomed, condemned or removed right now.
        const layer = (randomInt(3) === 0 && take(deletedLayers)) || randomBytes(randomInt(64, 768) * 1024);
        live.push(await pushImage(replicas.urls[replica], `team/r${replica}-app-${sequence++ % 3}`, layer));
      },
      delete: async (replica) => {
        const index = live.findIndex((image) => image.url === replicas.urls[replica]);
        const image = live.length > 4 && index >= 0 ? live.splice(index, 1)[0] : undefined;
        if (!image) return;
        const gone = await fetch(`${image.url}/v2/${image.repository}/manifests/${image.manifest}`, { method: "DELETE" });
        assert.equal(gone.status, 202);
        for (const [digest, bytes] of image.blobs) {
          const unlinked = await fetch(`${image.url}/v2/${image.repository}/blobs/${digest}`, { method: "DELETE" });
          // A re-pushed layer may be linked twice in one repository by two images: the second delete finds no link.
          assert.ok(unlinked.status === 202 || unlinked.status === 404, `blob delete: ${unlinked.status}`);
          if (bytes.length > 4096) deletedLayers.push(bytes);
        }
      },
      mount: async () => {
        const image = pick(live);
        if (!image) return;
        const [digest, bytes] = [...image.blobs].at(-1)!;
        const url = replicas.next();
        const repository = `mounts/${new URL(url).port}-${sequence++ % 3}`;
        const response = await fetch(`${url}/v2/${repository}/blobs/uploads/?mount=${digest}&from=${image.repository}`, { method: "POST" });
        await response.body?.cancel();
        // 202: the source was deleted meanwhile, and the client would upload instead.
        if (response.status === 201) mounted.push({ url, repository, digest, bytes });
        else assert.equal(response.status, 202);
      },
      pull: async () => {
        const image = pick(live);
        if (!image) return;
        for (const [digest, bytes] of image.blobs) await pull(replicas.next(), image.repository, digest, bytes).catch(() => cut++);
      },
    };
    const kinds = ["push", "push", "delete", "mount", "pull", "pull"];
    // The leader's own deletes are the ones it sees at once (other replicas' reach it with the shared object index): more of them there.
    const leader = replicas.urls.indexOf(await leaderUrl(replicas));
    const leaderKinds = ["push", "push", "delete", "delete", "mount", "pull"];
    const deadline = Date.now() + 25_000;
    const gcCalls: number[] = [];
    const workers = Array.from({ length: 6 }, async (_, w) => {
      const replica = w % replicas.urls.length;
      const menu = replica === leader ? leaderKinds : kinds;
      while (Date.now() < deadline) await steps[menu[randomInt(menu.length)]](replica);
    });
    const collecting = (async () => {
      while (Date.now() < deadline) {
        const response = await fetch(`${replicas.next()}/admin/gc`, { method: "POST" });
        gcCalls.push(response.status);
        await response.body?.cancel();
        await delay(300);
      }
    })();
    await Promise.all([...workers, collecting]);
    assert.equal(cut, 0, "reads cut or corrupted");
    assert.ok(gcCalls.every((status) => status === 200), `admin gc answers: ${gcCalls}`);

    // One more run after the churn; then everything still linked must be there.
    await fetch(`${replicas.urls[leader]}/admin/gc`, { method: "POST" }).then((r) => r.json());
    for (const image of live) {
      const manifest = await fetch(`${image.url}/v2/${image.repository}/manifests/${image.manifest}`, { headers: { accept: MANIFEST_TYPE } });
      assert.equal(manifest.status, 200, `${image.url} lost ${image.repository}@${image.manifest}`);
      assert.ok(Buffer.from(await manifest.arrayBuffer()).equals(image.manifestBytes));
      for (const [digest, bytes] of image.blobs) assert.equal(await pull(image.url, image.repository, digest, bytes), 200, `${image.url} lost ${image.repository}@${digest}`);
    }
    for (const { url, repository, digest, bytes } of mounted) assert.equal(await pull(url, repository, digest, bytes), 200, `${url} lost mounted ${repository}@${digest}`);
    const audit = await auditStore(await s3View(rawS3Client(await swiftS3()), replicas.bucket));
    assert.deepEqual(audit.problems, []);
    const deleted = await metric(replicas.urls[leader], "berth_gc_deleted_blobs_total");
    assert.ok(deleted > 0, "collection deleted nothing: the test proves nothing");
    console.log(`images live ${live.length}, mounts ${mounted.length}, blobs deleted by collection ${deleted}, blobs in the bucket ${audit.blobs.size}`);
  });

  it("pauses while Redis is down, reports it, keeps taking pushes, and resumes by itself", async () => {
    await replicas.redis.stop();
    await until("every replica reports collection paused", async () => (await Promise.all(replicas.urls.map((url) => metric(url, "berth_collection_paused")))).every((v) => v === 1));
    const collected = await Promise.all(replicas.urls.map((url) => metric(url, "berth_collections_total")));
    await delay(2000);
    assert.deepEqual(await Promise.all(replicas.urls.map((url) => metric(url, "berth_collections_total"))), collected, "a replica collected without Redis");
    for (const url of replicas.urls) assert.ok((await metric(url, "berth_collections_skipped_total", '{reason="coordination-down"}')) > 0, url);
    for (const url of replicas.urls) await pushBlob(url, "team/offline", randomBytes(16 * 1024));

    await replicas.redis.restart();
    await until("collection runs again", async () => (await Promise.all(replicas.urls.map((url) => metric(url, "berth_collections_total")))).some((n, i) => n > collected[i]));
    await until("no replica reports collection paused", async () => (await Promise.all(replicas.urls.map((url) => metric(url, "berth_collection_paused")))).every((v) => v === 0));
    const after = await Promise.all(replicas.urls.map((url) => metric(url, "berth_collections_total")));
    await delay(2000);
    const later = await Promise.all(replicas.urls.map((url) => metric(url, "berth_collections_total")));
    assert.equal(later.filter((n, i) => n > after[i]).length, 1, `collections per replica after recovery: ${after} then ${later}`);
  });
});
