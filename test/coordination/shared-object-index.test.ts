import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { coordinationSchema } from "../../config/coordination-schema.js";
import { storageSchema } from "../../config/storage-schema.js";
import { openReplicaStorage, type ReplicaStorage } from "../../server/server.js";
import { pushImage } from "../support/push-image.js";
import { RedisServer } from "../support/redis-server.js";
import { Replicas } from "../support/replicas.js";
import { createBucket, s3StorageConfig, swiftS3 } from "../support/swift-s3.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

const ACCEPT = { accept: "application/vnd.oci.image.manifest.v1+json" };

async function manifestDigest(url: string, repository: string, reference: string): Promise<string | number> {
  const response = await fetch(`${url}/v2/${repository}/manifests/${reference}`, { headers: ACCEPT });
  await response.arrayBuffer();
  return response.status === 200 ? response.headers.get("docker-content-digest")! : response.status;
}

async function tags(url: string, repository: string): Promise<string[] | number> {
  const response = await fetch(`${url}/v2/${repository}/tags/list`);
  if (response.status !== 200) return response.status;
  return ((await response.json()) as { tags: string[] }).tags;
}

describe("replicas sharing one bucket keep each other's object index true", () => {
  let replicas: Replicas;
  let a: string, b: string, c: string;

  before(async () => {
    replicas = await Replicas.start({ count: 3 });
    [a, b, c] = replicas.urls;
  });
  after(() => replicas?.close());

  it("serves on C what A pushed, and no longer what B deleted, after C had it warm", async () => {
    const pushed = await pushImage(a, "team/app", "v1");
    assert.equal(await manifestDigest(c, "team/app", "v1"), pushed.manifest, "C sees A's push");
    assert.deepEqual(await tags(c, "team/app"), ["v1"]);
    assert.equal(await manifestDigest(c, "team/app", pushed.manifest), pushed.manifest, "C has the manifest warm");

    const deleted = await fetch(`${b}/v2/team/app/manifests/${pushed.manifest}`, { method: "DELETE" });
    assert.equal(deleted.status, 202);
    assert.equal(await manifestDigest(c, "team/app", pushed.manifest), 404, "C no longer serves the manifest B deleted");
    assert.equal(await manifestDigest(c, "team/app", "v1"), 404, "nor the tag that named it");
    assert.equal(await manifestDigest(a, "team/app", "v1"), 404, "nor does A, which pushed it");
  });

  it("serves on B a tag A moved, after B had the old one warm", async () => {
    const first = await pushImage(a, "team/moving", "latest");
    assert.equal(await manifestDigest(b, "team/moving", "latest"), first.manifest);
    const second = await pushImage(a, "team/moving", "latest", undefined, { annotations: { moved: "yes" } });
    assert.notEqual(second.manifest, first.manifest);
    assert.equal(await manifestDigest(b, "team/moving", "latest"), second.manifest, "B follows the tag A moved");
    assert.equal(await manifestDigest(c, "team/moving", "latest"), second.manifest);
  });

  it("lists on every replica a tag another one pushed, and answers a warm pull from memory", async () => {
    await pushImage(c, "team/listed", "one");
    await pushImage(b, "team/listed", "two");
    for (const url of [a, b, c]) assert.deepEqual(await tags(url, "team/listed"), ["one", "two"], url);
    for (const url of [a, b, c]) await manifestDigest(url, "team/listed", "one");
    const before = await s3Requests(a);
    for (let i = 0; i < 5; i++) await manifestDigest(a, "team/listed", "one");
    assert.equal(await s3Requests(a), before, "a warm manifest pull on a replica costs no S3 request");
  });

  it("serves the store's truth while Redis is down, and hears the others again once it is back", async () => {
    const pushed = await pushImage(a, "team/outage", "v1");
    await replicas.redis.stop();
    try {
      await untilCoordinating(c, 0);
      assert.equal(await manifestDigest(c, "team/outage", pushed.manifest), pushed.manifest, "C reads the manifest with Redis down");
      const reads = await s3Reads(c);
      assert.equal(await manifestDigest(c, "team/outage", pushed.manifest), pushed.manifest);
      assert.equal(await s3Reads(c, "GetObject"), reads.get("GetObject")! + 1, "with Redis down C asks S3 for the link (another replica may have deleted it), not for the manifest's bytes, which never change");
      assert.equal(await manifestDigest(c, "team/outage", "gone"), 404, "C finds the tag absent with Redis down");
      assert.equal((await fetch(`${b}/v2/team/outage/manifests/${pushed.manifest}`, { method: "DELETE" })).status, 202, "B deletes with Redis down");
      const moved = await pushImage(b, "team/outage", "gone");
      assert.equal(await manifestDigest(c, "team/outage", pushed.manifest), 404, "C does not serve the bytes it held");
      assert.equal(await manifestDigest(c, "team/outage", "gone"), moved.manifest, "C does not trust what it knew absent");
    } finally {
      await replicas.redis.restart();
    }
    await untilCoordinating(a, 1);
    await untilCoordinating(c, 1);
    const after = await pushImage(a, "team/outage", "v2");
    await manifestDigest(c, "team/outage", "v2");
    const moved = await pushImage(a, "team/outage", "v2", undefined, { annotations: { moved: "yes" } });
    assert.notEqual(moved.manifest, after.manifest);
    assert.equal(await manifestDigest(c, "team/outage", "v2"), moved.manifest, "C follows a tag moved after Redis came back");
  });
});

/** Waits until a replica's berth_coordination_up is `up`. */
async function untilCoordinating(url: string, up: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!new RegExp(`^berth_coordination_up ${up}$`, "m").test(await (await fetch(`${url}/metrics`)).text())) {
    assert.ok(Date.now() < deadline, `berth_coordination_up never became ${up}`);
    await delay(100);
  }
}

/** A replica's S3 reads so far, by operation (or of one operation), from its /metrics. */
async function s3Reads(url: string): Promise<Map<string, number>>;
async function s3Reads(url: string, operation: string): Promise<number>;
async function s3Reads(url: string, operation?: string): Promise<Map<string, number> | number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const counts = new Map([...text.matchAll(/^berth_s3_requests_total\{operation="(GetObject|HeadObject)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])]));
  return operation === undefined ? counts : (counts.get(operation) ?? 0);
}

/** The S3 reads (GetObject, HeadObject) a replica sent so far, from its /metrics: its idle write probe left out. */
async function s3Requests(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(/^berth_s3_requests_total\{operation="(GetObject|HeadObject)"\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[2]), 0);
}

/**
 * Two replicas' storage in this process, opened as berth opens it: a change's publish returns
 * before the other replica heard it, so the other is read at once, before its subscription could
 * be read, as a client told "deleted" by one replica asks another.
 */
describe("a replica asked right after another replica's change answers with the change", () => {
  let redis: RedisServer;
  let work: TempDir;
  let a: ReplicaStorage, b: ReplicaStorage;

  before(async () => {
    redis = await RedisServer.start();
    work = await makeTempDir("object-index-at-once");
    const s3 = await swiftS3();
    const bucket = await createBucket(s3);
    const secretFile = join(work.path, "internal-secret");
    await writeFile(secretFile, randomBytes(24).toString("hex"), { mode: 0o600 });
    const open = (id: string) =>
      openReplicaStorage(
        {
          storage: storageSchema.parse({ driver: "s3", root: join(work.path, id), s3: s3StorageConfig(s3, bucket) }),
          coordination: coordinationSchema.parse({ redis: { url: redis.url }, replicaId: id, internal: { listen: "127.0.0.1:0", secretFile } }),
        },
        pino({ level: "silent" }),
      );
    [a, b] = await Promise.all([open("a"), open("b")]);
    await untilSubscribed(a, b);
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await redis?.close();
    await work?.remove();
  });

  it("no longer serves bytes it held once the other replica's delete returned", async () => {
    for (let i = 0; i < 20; i++) {
      const path = `at-once/deleted-${i}`;
      await a.storage.driver.writeSmall(path, "record");
      assert.equal((await b.storage.driver.readSmall(path))?.toString(), "record", "B holds the bytes");
      await a.storage.driver.delete(path);
      assert.equal(await b.storage.driver.readSmall(path), undefined, `B read right after A's delete (${i})`);
      assert.equal(await b.storage.driver.stat(path), undefined);
    }
  });

  it("no longer answers absent once the other replica's write returned", async () => {
    for (let i = 0; i < 20; i++) {
      const path = `at-once/written-${i}`;
      assert.equal(await b.storage.driver.readSmall(path), undefined, "B knows the key absent");
      await a.storage.driver.writeSmall(path, "record");
      assert.equal((await b.storage.driver.readSmall(path))?.toString(), "record", `B read right after A's write (${i})`);
      assert.ok((await b.storage.driver.list("at-once")).includes(`written-${i}`), "B lists it");
    }
  });
});

/** Waits until both replicas' object index channels are subscribed (before that, they trust no memory). */
async function untilSubscribed(...replicas: ReplicaStorage[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!replicas.every((replica) => replica.coordination!.up)) {
    assert.ok(Date.now() < deadline, "the replicas never subscribed");
    await delay(20);
  }
}
