import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, beforeEach, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { FakeUpstream } from "./fake-upstream.js";
import { readFully, startMirror } from "./mirror-fixture.js";

describe("mirror against a faulty upstream", () => {
  let upstream: FakeUpstream;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  let repo = "";
  let counter = 0;
  let blob: Buffer;
  let blobDigest: string;
  let blobPath: string;

  before(async () => {
    upstream = await new FakeUpstream().start();
    berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "fake", readTimeout: "1s", connectTimeout: "1s" }]);
  });
  after(async () => {
    await berth.stop();
    await upstream.stop();
  });
  beforeEach(() => {
    // Each test its own repository: backoff is per upstream and repository.
    repo = `team/app${counter++}`;
    blob = randomBytes(3 * 1024 * 1024 + 17);
    blobDigest = upstream.addBlob(repo, blob);
    blobPath = `/v2/${repo}/blobs/${blobDigest}`;
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${berth.url}/v2/fake/${path.replace(/^\/v2\//, "")}`, { headers });
  const stored = async (digest: string) => {
    await berth.fills.settled();
    return (await berth.storage.blobs.size(Digest.parse(digest)!)) !== undefined;
  };

  it("never serves a complete body when the upstream's bytes do not match the digest, and keeps nothing", async () => {
    upstream.setFault(blobPath, { kind: "corrupt" });
    const response = await get(blobPath);
    const body = await readFully(response);
    assert.ok(body instanceof Error || body.length < blob.length, "a corrupt blob must be cut short");
    assert.equal(await stored(blobDigest), false);
    upstream.setFault(blobPath, undefined);
  });

  it("refetches and serves correct bytes after a corrupt attempt", async () => {
    upstream.setFault(blobPath, { kind: "corrupt" });
    await readFully(await get(blobPath));
    upstream.setFault(blobPath, undefined);
    const body = await readFully(await get(blobPath));
    assert.ok(Buffer.isBuffer(body) && body.equals(blob));
    assert.equal(await stored(blobDigest), true);
  });

  it("cuts the response short and stores nothing when the upstream truncates a blob", async () => {
    upstream.setFault(blobPath, { kind: "truncate", sendBytes: 1000 });
    const body = await readFully(await get(blobPath));
    assert.ok(body instanceof Error || body.length < blob.length);
    assert.equal(await stored(blobDigest), false);
    upstream.setFault(blobPath, undefined);
  });

  it("ends a stalled upstream transfer after the read timeout instead of hanging", async () => {
    upstream.setFault(blobPath, { kind: "stall-after", sendBytes: 4096 });
    const body = await readFully(await get(blobPath));
    assert.ok(body instanceof Error || body.length < blob.length);
    assert.equal(await stored(blobDigest), false);
    upstream.setFault(blobPath, undefined);
  });

  it("refuses a manifest whose bytes do not hash to the digest asked for", async () => {
    const manifestDigest = upstream.addManifest(repo, { schemaVersion: 2, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: blobDigest, size: blob.length }, layers: [] });
    const other = upstream.addManifest(repo, { schemaVersion: 2, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: blobDigest, size: 1 }, layers: [] });
    // Serve the other manifest's bytes under the requested digest.
    (upstream as unknown as { content: Map<string, unknown> }).content.set(`/v2/${repo}/manifests/${manifestDigest}`, (upstream as unknown as { content: Map<string, unknown> }).content.get(`/v2/${repo}/manifests/${other}`));
    const response = await get(`/v2/${repo}/manifests/${manifestDigest}`);
    assert.equal(response.status, 502);
    assert.equal(await stored(manifestDigest), false);
  });

  it("refuses a manifest when the upstream's Docker-Content-Digest contradicts its bytes", async () => {
    const digest = upstream.addManifest(repo, { schemaVersion: 2, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: blobDigest, size: blob.length }, layers: [] }, "lying");
    upstream.setFault(`/v2/${repo}/manifests/${digest}`, { kind: "wrong-digest-header" });
    const response = await get(`/v2/${repo}/manifests/lying`);
    assert.equal(response.status, 502);
    const body = (await response.json()) as { errors: { code: string }[] };
    assert.equal(body.errors[0].code, "UNKNOWN");
  });

  it("refuses an oversized manifest without storing it", async () => {
    upstream.setFault(`/v2/${repo}/manifests/huge`, { kind: "oversize", bytes: 5 * 1024 * 1024 });
    const response = await get(`/v2/${repo}/manifests/huge`);
    assert.equal(response.status, 502);
  });

  it("answers a redirect loop with an error, not a hang", async () => {
    upstream.setFault(`/v2/${repo}/manifests/loop`, { kind: "redirect-loop" });
    const response = await get(`/v2/${repo}/manifests/loop`);
    assert.ok(response.status >= 500, `status ${response.status}`);
    await response.arrayBuffer();
  });
});

describe("mirror backoff", () => {
  it("answers 503 with Retry-After and stops asking a failing upstream until the backoff ends", async () => {
    const upstream = await new FakeUpstream().start();
    const berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "fake" }]);
    try {
      upstream.setFault("/v2/team/app/manifests/v1", { kind: "status", status: 500 });
      const first = await fetch(`${berth.url}/v2/fake/team/app/manifests/v1`);
      assert.equal(first.status, 503);
      assert.equal(first.headers.get("retry-after"), "10");
      assert.equal(((await first.json()) as { errors: { code: string }[] }).errors[0].code, "UNAVAILABLE");
      const asked = upstream.requests.length;
      const second = await fetch(`${berth.url}/v2/fake/team/app/manifests/v1`);
      assert.equal(second.status, 503);
      assert.ok(Number(second.headers.get("retry-after")) > 0);
      await second.arrayBuffer();
      assert.equal(upstream.requests.length, asked, "berth must not ask the upstream while backing off");
    } finally {
      await berth.stop();
      await upstream.stop();
    }
  });

  it("passes the upstream's 429 Retry-After on to the client", async () => {
    const upstream = await new FakeUpstream().start();
    const berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "fake" }]);
    try {
      upstream.setFault("/v2/team/app/manifests/v1", { kind: "status", status: 429, headers: { "retry-after": "42" } });
      const response = await fetch(`${berth.url}/v2/fake/team/app/manifests/v1`);
      assert.equal(response.status, 429);
      assert.equal(response.headers.get("retry-after"), "42");
      assert.equal(((await response.json()) as { errors: { code: string }[] }).errors[0].code, "TOOMANYREQUESTS");
    } finally {
      await berth.stop();
      await upstream.stop();
    }
  });
});
