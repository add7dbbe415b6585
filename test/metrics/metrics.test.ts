import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { blob, descriptorOf, manifest, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, type Content } from "../http/oci-fixtures.js";
import { FakeUpstream } from "../mirror/fake-upstream.js";
import { readFully, startMirror } from "../mirror/mirror-fixture.js";
import { parseExposition, sample, samplesOf, type Samples } from "./exposition.js";
import { HoldingProxy } from "./holding-proxy.js";

type Mirror = Awaited<ReturnType<typeof startMirror>>;

async function scrape(berth: { url: string }): Promise<Samples> {
  const response = await fetch(`${berth.url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parseExposition(await response.text());
}

/** Polls /metrics until `done` holds; a bounded wait for something the test set in motion. */
async function scrapeUntil(berth: { url: string }, what: string, done: (samples: Samples) => boolean): Promise<Samples> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const samples = await scrape(berth);
    if (done(samples)) return samples;
    await delay(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function bodyOf(response: Response): Promise<Buffer> {
  const body = await readFully(response);
  if (body instanceof Error) throw body;
  return body;
}

describe("/metrics after scripted traffic: hosted push and pull, mirrored cold, warm and coalesced pulls, a failing upstream, a collection", () => {
  let fake: FakeUpstream;
  let upstream: HoldingProxy;
  let berth: Mirror;
  let hostedConfig: Content;
  let unreferenced: Content;
  let hostedManifest: Content;
  let mirroredManifest: Content;
  let config: Content;
  let layer: Content;
  let sharedLayer: Content;
  let backingOffRightAfterFailure: number | undefined;
  let coalescedUpstreamGets = 0;
  let coalescedBodies: Buffer[] = [];
  let upstreamRequestsWhileBackingOff = 0;
  let final: Samples;

  const mirrored = (path: string) => `${berth.url}/v2/team/app/${path}?ns=${encodeURIComponent(upstream.host)}`;

  before(async () => {
    fake = await new FakeUpstream().start();
    upstream = await new HoldingProxy(fake.url).start();
    berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "up" }], { cache: { maxSize: 1, minAge: 0, collectInterval: 0 } });

    // Hosted: two blobs pushed (one then deleted, so collection finds it unreferenced), a manifest, a pull.
    hostedConfig = blob('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    unreferenced = blob(randomBytes(3000));
    hostedManifest = manifest({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptorOf(hostedConfig, OCI_CONFIG), layers: [] });
    for (const content of [hostedConfig, unreferenced]) {
      const pushed = await fetch(`${berth.url}/v2/hosted/app/blobs/uploads/?digest=${content.digest}`, { method: "POST", body: new Uint8Array(content.bytes), headers: { "content-type": "application/octet-stream" } });
      assert.equal(pushed.status, 201);
    }
    assert.equal((await fetch(`${berth.url}/v2/hosted/app/blobs/${unreferenced.digest}`, { method: "DELETE" })).status, 202);
    const put = await fetch(`${berth.url}/v2/hosted/app/manifests/v1`, { method: "PUT", body: new Uint8Array(hostedManifest.bytes), headers: { "content-type": OCI_MANIFEST } });
    assert.equal(put.status, 201);
    assert.deepEqual(await bodyOf(await fetch(`${berth.url}/v2/hosted/app/manifests/v1`, { headers: { accept: OCI_MANIFEST } })), hostedManifest.bytes);
    assert.deepEqual(await bodyOf(await fetch(`${berth.url}/v2/hosted/app/blobs/${hostedConfig.digest}`)), hostedConfig.bytes);

    // Mirrored: a cold pull (manifest by tag, config, layer), then the same pull warm.
    config = blob('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:00"]}}');
    layer = blob(randomBytes(200 * 1024));
    sharedLayer = blob(randomBytes(300 * 1024));
    fake.addBlob("team/app", config.bytes);
    fake.addBlob("team/app", layer.bytes);
    fake.addBlob("team/app", sharedLayer.bytes);
    const document = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptorOf(config, OCI_CONFIG), layers: [descriptorOf(layer, OCI_LAYER), descriptorOf(sharedLayer, OCI_LAYER)] };
    fake.addManifest("team/app", document, "v1");
    mirroredManifest = blob(JSON.stringify(document));
    for (let pull = 0; pull < 2; pull++) {
      assert.deepEqual(await bodyOf(await fetch(mirrored("manifests/v1"), { headers: { accept: OCI_MANIFEST } })), mirroredManifest.bytes);
      assert.deepEqual(await bodyOf(await fetch(mirrored(`blobs/${config.digest}`))), config.bytes);
      assert.deepEqual(await bodyOf(await fetch(mirrored(`blobs/${layer.digest}`))), layer.bytes);
    }

    // Coalesced: three clients ask for one cold blob while the upstream holds its answer.
    const held = upstream.hold(`/v2/team/app/blobs/${sharedLayer.digest}`);
    const first = fetch(mirrored(`blobs/${sharedLayer.digest}`));
    await held.arrived;
    const others = [fetch(mirrored(`blobs/${sharedLayer.digest}`)), fetch(mirrored(`blobs/${sharedLayer.digest}`))];
    await scrapeUntil(berth, "two clients joining the fill", (s) => sample(s, "berth_blob_fill_coalesced_waiters_total", { upstream: upstream.host }) === 2);
    held.release();
    coalescedBodies = await Promise.all([first, ...others].map(async (response) => bodyOf(await response)));
    coalescedUpstreamGets = fake.count("GET", `/v2/team/app/blobs/${sharedLayer.digest}`);

    // A failing upstream: its 500 backs the repository off, and the next request does not reach it.
    fake.addManifest("team/broken", document, "v1");
    fake.setFault("/v2/team/broken/manifests/v1", { kind: "status", status: 500 });
    const broken = `${berth.url}/v2/team/broken/manifests/v1?ns=${encodeURIComponent(upstream.host)}`;
    assert.equal((await fetch(broken)).status, 503);
    backingOffRightAfterFailure = sample(await scrape(berth), "berth_upstream_backoff_keys", { upstream: upstream.host });
    const before = fake.requests.length;
    assert.equal((await fetch(broken)).status, 503);
    upstreamRequestsWhileBackingOff = fake.requests.length - before;

    assert.equal((await fetch(`${berth.url}/admin/gc`, { method: "POST" })).status, 200);
    final = await scrape(berth);
  });
  after(async () => {
    await berth?.stop();
    await upstream?.stop();
    await fake?.stop();
  });

  it("counts requests by route kind and status, never by raw path", () => {
    const requests = (route: string, status: string) => sample(final, "berth_http_requests_total", { route, status });
    assert.equal(requests("upload", "201"), 2);
    assert.equal(requests("blob", "202"), 1);
    assert.equal(requests("manifest", "201"), 1);
    assert.equal(requests("manifest", "200"), 3);
    assert.equal(requests("blob", "200"), 8);
    assert.equal(requests("manifest", "503"), 2);
    assert.equal(requests("admin", "200"), 1);
    assert.equal(sample(final, "berth_http_request_duration_seconds_count", { route: "blob" }), 9);
    const routes = new Set(samplesOf(final, "berth_http_requests_total").map((s) => s.labels.route));
    for (const route of routes) assert.match(route, /^(base|catalog|manifest|blob|upload|tags|referrers|token|health|metrics|ui|admin|admission|other)$/);
  });

  it("counts the response body bytes of every blob served", () => {
    const served = hostedConfig.bytes.length + 2 * config.bytes.length + 2 * layer.bytes.length + 3 * sharedLayer.bytes.length;
    assert.equal(sample(final, "berth_http_response_bytes_total", { route: "blob" }), served);
  });

  it("counts a mirrored cold pull as misses and the warm pull after it as hits, by kind", () => {
    assert.equal(sample(final, "berth_cache_hits_total", { upstream: upstream.host, kind: "manifest" }), 1);
    assert.equal(sample(final, "berth_cache_hits_total", { upstream: upstream.host, kind: "blob" }), 2);
    assert.equal(sample(final, "berth_cache_misses_total", { upstream: upstream.host, kind: "manifest" }), 1);
    // config and layer cold, and each of the three clients of the coalesced blob.
    assert.equal(sample(final, "berth_cache_misses_total", { upstream: upstream.host, kind: "blob" }), 5);
  });

  it("counts clients that joined an in-flight blob fill as coalesced waiters, behind one upstream fetch", () => {
    assert.equal(coalescedUpstreamGets, 1);
    for (const body of coalescedBodies) assert.ok(body.equals(sharedLayer.bytes));
    assert.equal(sample(final, "berth_blob_fill_coalesced_waiters_total", { upstream: upstream.host }), 2);
    assert.equal(sample(final, "berth_blob_fills_in_flight"), 0);
  });

  it("counts upstream requests by status, the bytes they brought and their latency", () => {
    // HEAD and GET of the tag's manifest, config, layer, the coalesced layer; then the 500.
    assert.equal(sample(final, "berth_upstream_requests_total", { upstream: upstream.host, status: "200" }), 5);
    assert.equal(sample(final, "berth_upstream_requests_total", { upstream: upstream.host, status: "500" }), 1);
    assert.equal(sample(final, "berth_upstream_request_duration_seconds_count", { upstream: upstream.host }), 6);
    const received = mirroredManifest.bytes.length + config.bytes.length + layer.bytes.length + sharedLayer.bytes.length;
    assert.equal(sample(final, "berth_upstream_received_bytes_total", { upstream: upstream.host }), received);
  });

  it("reports the repository whose upstream answered 500 as backing off, and sends nothing upstream meanwhile", () => {
    assert.equal(backingOffRightAfterFailure, 1);
    assert.equal(upstreamRequestsWhileBackingOff, 0);
  });

  it("reports storage bytes, evictions, deleted unreferenced blobs and freed bytes from a content collection", () => {
    const mirroredBytes = mirroredManifest.bytes.length + config.bytes.length + layer.bytes.length + sharedLayer.bytes.length;
    assert.equal(sample(final, "berth_collections_total"), 1);
    assert.equal(sample(final, "berth_storage_bytes", { content: "hosted" }), hostedConfig.bytes.length + hostedManifest.bytes.length);
    // cache.maxSize is 1 byte: every mirrored blob goes.
    assert.equal(sample(final, "berth_storage_bytes", { content: "cache" }), 0);
    assert.equal(sample(final, "berth_cache_evictions_total"), 4);
    assert.equal(sample(final, "berth_gc_deleted_blobs_total"), 1);
    assert.equal(sample(final, "berth_gc_freed_bytes_total"), mirroredBytes + unreferenced.bytes.length);
  });

  it("includes the default process metrics", () => {
    assert.ok((sample(final, "process_cpu_user_seconds_total") ?? 0) > 0);
    assert.ok((sample(final, "nodejs_heap_size_total_bytes") ?? 0) > 0);
  });
});

describe("/metrics in auth mode token", () => {
  let berth: Mirror;

  before(async () => {
    berth = await startMirror([], {
      auth: {
        mode: "token",
        users: [{ username: "ci", passwordHash: bcrypt.hashSync("right-password", 4) }],
        policy: [{ subjects: ["ci"], repositories: ["**"], actions: ["pull"] }],
      },
    });
  });
  after(() => berth?.stop());

  it("counts tokens issued and token requests refused, by error code", async () => {
    const basic = (password: string) => `Basic ${Buffer.from(`ci:${password}`).toString("base64")}`;
    const issued = await fetch(`${berth.url}/token?service=berth&scope=repository:team/app:pull`, { headers: { authorization: basic("right-password") } });
    assert.equal(issued.status, 200);
    const refused = await fetch(`${berth.url}/token?service=berth&scope=repository:team/app:pull`, { headers: { authorization: basic("wrong-password") } });
    assert.equal(refused.status, 401);

    const samples = await scrape(berth);
    assert.equal(sample(samples, "berth_tokens_issued_total"), 1);
    assert.equal(sample(samples, "berth_token_refusals_total", { code: "UNAUTHORIZED" }), 1);
    assert.equal(sample(samples, "berth_http_requests_total", { route: "token", status: "200" }), 1);
    assert.equal(sample(samples, "berth_http_requests_total", { route: "token", status: "401" }), 1);
  });
});
