import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { LinkLimiter } from "../../bench/link-limiter.js";
import { mirrorOf, ORIGIN_PREFIX, OriginPublisher } from "../mirror/real-origin.js";
import { layoutBlobPath, type BuiltLayer } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { Replicas } from "../support/replicas.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { sha256OfFileRange, streamBlob } from "../support/streamed-blob.js";

const CLIENTS = 20;
/** The issue asks for 200 MiB (which passes too: 28 s and 37 s for the two tests on a loaded 2-core machine); this size keeps the file under a minute. */
const HERD_LAYER_BYTES = 96 * 1024 * 1024;
const SMALL_LAYER_BYTES = 8 * 1024 * 1024;
/** The origin's link, as a mirror's upstream far away has one. */
const LINK_BYTES_PER_SECOND = 100 * 1024 * 1024;

/** How many blob fills a replica runs itself now (its /metrics): the fill's owner runs one, its followers none. */
async function fillsInFlight(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = /^berth_blob_fills_in_flight (\d+)$/m.exec(text);
  return Number(line?.[1] ?? 0);
}

describe("a cold blob pulled through three replicas from an origin behind a 100 MiB/s link", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let link: LinkLimiter;
  let publisher: OriginPublisher;
  let replicas: Replicas;

  before(async () => {
    work = await makeTempDir("cluster-fills");
    origin = await OriginRegistry.start();
    link = await LinkLimiter.start(origin, LINK_BYTES_PER_SECOND);
    publisher = new OriginPublisher(join(work.path, "layout"), origin);
    replicas = await Replicas.start({ count: 3, config: mirrorOf(origin, { url: link.url }) });
  });
  after(async () => {
    await replicas?.close();
    await link?.close();
    await origin?.close();
    await work?.remove();
  });

  const publishLayer = async (repository: string, seed: string, size = HERD_LAYER_BYTES): Promise<BuiltLayer> => {
    const image = await publisher.publish(repository, "v1", { ref: seed, layers: [{ size, compression: "none" }], seed });
    return image.manifests[0].layers[0];
  };
  const blobPath = (repository: string, layer: BuiltLayer) => `/v2/${ORIGIN_PREFIX}/${repository}/blobs/${layer.digest}`;

  it(`${CLIENTS} clients spread over the replicas, some asking for a Range, cause one origin GET, and each receives exactly its bytes`, async () => {
    const layer = await publishLayer("cluster/herd", "cluster-herd");
    const layerPath = layoutBlobPath(join(work.path, "layout"), layer.digest);
    const last = layer.size - 1;
    const ranges = [
      { header: `bytes=${last - 5000}-`, start: last - 5000, end: last },
      { header: "bytes=1000-1099", start: 1000, end: 1099 },
      { header: `bytes=${40 * 1024 * 1024}-${40 * 1024 * 1024 + 999_999}`, start: 40 * 1024 * 1024, end: 40 * 1024 * 1024 + 999_999 },
    ];

    const wholeClients = CLIENTS - ranges.length;
    const [wholes, parts] = await Promise.all([
      Promise.all(Array.from({ length: wholeClients }, () => streamBlob(`${replicas.next()}${blobPath("cluster/herd", layer)}`))),
      Promise.all(ranges.map((range) => streamBlob(`${replicas.next()}${blobPath("cluster/herd", layer)}`, { Range: range.header }))),
    ]);

    wholes.forEach((body, i) => {
      assert.equal(body.error, undefined, `client ${i}`);
      assert.equal(body.status, 200, `client ${i}`);
      assert.equal(body.length, layer.size, `client ${i}: length`);
      assert.equal(body.digest, layer.digest, `client ${i}: content`);
    });
    for (const [i, part] of parts.entries()) {
      const { header, start, end } = ranges[i];
      assert.equal(part.status, 206, header);
      assert.equal(part.headers.get("content-range"), `bytes ${start}-${end}/${layer.size}`, header);
      assert.equal(part.digest, await sha256OfFileRange(layerPath, start, end), header);
    }
    assert.equal(await origin.count("GET", `/v2/cluster/herd/blobs/${layer.digest}`), 1);
  });

  it("when the replica fetching the blob is killed (SIGKILL) halfway, another takes the fill over: every client of the other replicas receives every byte, and the origin served the blob twice", async () => {
    const layer = await publishLayer("cluster/takeover", "cluster-takeover");
    let furthest = 0;
    const clients = Array.from({ length: CLIENTS }, () => {
      const url = replicas.next();
      return { url, body: streamBlob(`${url}${blobPath("cluster/takeover", layer)}`, {}, (length) => (furthest = Math.max(furthest, length))) };
    });
    while (furthest < layer.size / 2) await delay(10);
    const owners: string[] = [];
    for (const url of replicas.urls) if ((await fillsInFlight(url)) > 0) owners.push(url);
    assert.equal(owners.length, 1, `one replica fetches the blob: ${owners.join(", ")}`);
    const owner = replicas.members.find((member) => member.url === owners[0])!;
    await owner.kill();

    const bodies = await Promise.all(clients.map(async ({ url, body }) => ({ url, body: await body })));

    const others = bodies.filter(({ url }) => url !== owner.url);
    assert.ok(others.length >= CLIENTS - Math.ceil(CLIENTS / 3));
    others.forEach(({ url, body }, i) => {
      assert.equal(body.error, undefined, `client ${i} of ${url}`);
      assert.equal(body.status, 200, `client ${i} of ${url}`);
      assert.equal(body.length, layer.size, `client ${i} of ${url}: length`);
      assert.equal(body.digest, layer.digest, `client ${i} of ${url}: content`);
    });
    assert.equal(await origin.count("GET", `/v2/cluster/takeover/blobs/${layer.digest}`), 2);
  });

  it("while Redis is down, each replica fetches on its own: the clients still receive every byte, and the origin serves the blob at most once per replica", async () => {
    const layer = await publishLayer("cluster/no-redis", "cluster-no-redis", SMALL_LAYER_BYTES);
    const running = replicas.members.filter((member) => member.running);
    await replicas.redis.stop();
    try {
      const bodies = await Promise.all(Array.from({ length: 3 * running.length }, (_, i) => streamBlob(`${running[i % running.length].url}${blobPath("cluster/no-redis", layer)}`)));

      bodies.forEach((body, i) => {
        assert.equal(body.error, undefined, `client ${i}`);
        assert.equal(body.status, 200, `client ${i}`);
        assert.equal(body.digest, layer.digest, `client ${i}: content`);
      });
      const gets = await origin.count("GET", `/v2/cluster/no-redis/blobs/${layer.digest}`);
      assert.ok(gets >= 1 && gets <= running.length, `${gets} origin GETs`);
    } finally {
      await replicas.redis.restart();
    }
  });
});

describe("a fill followed across replicas, with tenants isolated", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let link: LinkLimiter;
  let replicas: Replicas;
  let layer: BuiltLayer;

  before(async () => {
    work = await makeTempDir("cluster-fills-tenants");
    origin = await OriginRegistry.start({ auth: { kind: "htpasswd", users: { owner: "owner-secret" } } });
    const image = await new OriginPublisher(join(work.path, "layout"), origin, "owner:owner-secret").publish("team/app", "v1", {
      ref: "private",
      layers: [{ size: 32 * 1024 * 1024, compression: "none" }],
      seed: "cluster-private",
    });
    layer = image.manifests[0].layers[0];
    // Slow enough that the fill is still running when the second tenant asks.
    link = await LinkLimiter.start(origin, 16 * 1024 * 1024);
    const credentials = join(work.path, "team-a.json");
    await writeFile(credentials, JSON.stringify({ auths: { [origin.host]: { auth: Buffer.from("owner:owner-secret").toString("base64") } } }));
    const hash = bcrypt.hashSync("pw", 4);
    replicas = await Replicas.start({
      count: 2,
      config: {
        upstreams: [{ host: origin.host, url: link.url, prefix: "private" }],
        auth: {
          mode: "token",
          users: [
            { username: "alice", passwordHash: hash, tenant: "team-a" },
            { username: "bob", passwordHash: hash, tenant: "team-b" },
          ],
          policy: [{ tenants: ["team-a", "team-b"], repositories: ["**"], actions: ["pull"] }],
        },
        tenants: [{ name: "team-a", credentials: [credentials] }],
      },
    });
  });
  after(async () => {
    await replicas?.close();
    await link?.close();
    await origin?.close();
    await work?.remove();
  });

  const tokenFor = async (url: string, user: string) => {
    const response = await fetch(`${url}/token?service=berth&scope=repository:private/team/app:pull`, { headers: { authorization: `Basic ${Buffer.from(`${user}:pw`).toString("base64")}` } });
    assert.equal(response.status, 200);
    return ((await response.json()) as { token: string }).token;
  };

  it("refuses a tenant the upstream refuses on a replica that would follow another replica's fill for a tenant it admits", async () => {
    const [owner, follower] = replicas.urls;
    const blobUrl = (url: string) => `${url}/v2/private/team/app/blobs/${layer.digest}`;
    let aliceHas = 0;
    const alice = streamBlob(blobUrl(owner), { authorization: `Bearer ${await tokenFor(owner, "alice")}` }, (length) => (aliceHas = length));
    while (aliceHas === 0) await delay(10);

    const bob = await fetch(blobUrl(follower), { headers: { authorization: `Bearer ${await tokenFor(follower, "bob")}` } });
    const bobHad = Buffer.from(await bob.arrayBuffer());
    const aliceHadThen = aliceHas;

    assert.equal(bob.status, 403, bob.status === 200 ? "bob was served the private blob" : bobHad.toString());
    assert.equal((JSON.parse(bobHad.toString()) as { errors: { code: string }[] }).errors[0].code, "DENIED");
    assert.ok(aliceHadThen < layer.size, "the fill was still running when bob was answered");
    const aliceGot = await alice;
    assert.equal(aliceGot.status, 200);
    assert.equal(aliceGot.digest, layer.digest);
    // A GET answered 401 is the upstream's challenge, before berth sends the tenant's credentials.
    const fetched = (await origin.accessLog()).filter((e) => e.method === "GET" && e.path === `/v2/team/app/blobs/${layer.digest}` && e.status === 200);
    assert.equal(fetched.length, 1);
  });
});

