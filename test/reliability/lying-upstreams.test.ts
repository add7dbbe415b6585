import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { UpstreamClient } from "../../server/upstream/upstream-client.js";
import { FakeUpstream } from "../mirror/fake-upstream.js";
import { startMirror } from "../mirror/mirror-fixture.js";
import { LyingUpstream } from "./lying-upstream.js";
import { errorCode, getVerified } from "./registry-client.js";
import { sha256 } from "./store-audit.js";

const KiB = 1024;

/** How a GET through berth ended: the status, and whether the body arrived whole (and hashes to `digest`). */
interface Outcome {
  status: number;
  complete: boolean;
  verified: boolean;
  retryAfter?: string;
  code?: string;
}

function pull(url: string, digest: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      const done = (complete: boolean) => {
        const body = Buffer.concat(chunks);
        const code = (res.statusCode ?? 0) >= 400 ? errorCode({ status: res.statusCode ?? 0, headers: res.headers, body }) : undefined;
        resolve({ status: res.statusCode ?? 0, complete, verified: complete && res.statusCode === 200 && sha256(body) === digest, retryAfter: res.headers["retry-after"], code });
      };
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => done(res.complete));
      res.on("error", () => done(false));
      res.on("aborted", () => done(false));
    });
    req.on("error", () => resolve({ status: 0, complete: false, verified: false }));
    req.end();
  });
}

describe("mirroring upstreams that lie or break", () => {
  let liar: LyingUpstream;
  let honest: FakeUpstream;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  let repo = "";
  let counter = 0;

  before(async () => {
    liar = await new LyingUpstream().start();
    honest = await new FakeUpstream().start();
    berth = await startMirror(
      [
        { host: liar.host, url: liar.url, prefix: "liar", readTimeout: "2s", connectTimeout: "2s" },
        // The same liar under a long read timeout, for requests that must stay pending.
        { host: "patient.liar", url: liar.url, prefix: "patient", readTimeout: "10m" },
        { host: honest.host, url: honest.url, prefix: "honest" },
      ],
      { cache: { collectInterval: 0 } },
    );
  });
  after(async () => {
    await berth?.stop();
    await liar?.stop();
    await honest?.stop();
  });
  beforeEach(() => {
    // Each test its own repository: backoff is per upstream and repository.
    repo = `lies/app${counter++}`;
  });

  const viaBerth = (prefix: string, path: string) => `${berth.url}/v2/${prefix}${path.slice("/v2".length)}`;
  const stored = async (digest: string) => {
    await berth.fills.settled();
    return (await berth.storage.blobs.size(Digest.parse(digest)!)) !== undefined;
  };
  const tempFiles = () => readdir(join(berth.root, "_tmp"));

  /** A lie about a blob is never served whole, never stored, and leaves no temp file. */
  async function assertRefused(outcome: Outcome, digest: string): Promise<void> {
    assert.equal(outcome.verified, false, "a lying upstream's blob must not be served whole");
    assert.ok(outcome.status >= 500 || !outcome.complete, `status ${outcome.status}, complete ${outcome.complete}`);
    assert.equal(await stored(digest), false, "nothing of it is stored");
    await waitFor(async () => (await tempFiles()).length === 0, "the fill's temp file is removed");
  }

  it("cuts a blob whose Content-Length is shorter than its body, stores nothing, and serves the honest blob afterwards", async () => {
    const body = randomBytes(256 * KiB);
    const { path, digest } = LyingUpstream.blobPath(repo, body);
    liar.set(path, { kind: "content-length", body, declared: 200 * KiB });
    await assertRefused(await pull(viaBerth("liar", path), digest), digest);
    liar.set(path, { kind: "honest", body });
    await getVerified(viaBerth("liar", path), digest);
    assert.equal(await stored(digest), true);
  });

  it("cuts a blob whose Content-Length is longer than the body it sends before closing, and stores nothing", async () => {
    const body = randomBytes(256 * KiB);
    const { path, digest } = LyingUpstream.blobPath(repo, body);
    liar.set(path, { kind: "content-length", body, declared: 300 * KiB });
    await assertRefused(await pull(viaBerth("liar", path), digest), digest);
  });

  it("gives up on a blob whose Content-Length is longer than the body when the connection stays open, after the read timeout", async () => {
    const body = randomBytes(256 * KiB);
    const { path, digest } = LyingUpstream.blobPath(repo, body);
    liar.set(path, { kind: "content-length", body, declared: 300 * KiB, keepOpen: true });
    await assertRefused(await pull(viaBerth("liar", path), digest), digest);
    await waitFor(async () => liar.pending(path) === 0, "berth hangs up on the upstream");
  });

  it("refuses another blob's bytes served under the digest asked for (with their own Docker-Content-Digest), and stores neither", async () => {
    const asked = randomBytes(128 * KiB);
    const other = randomBytes(128 * KiB);
    const { path, digest } = LyingUpstream.blobPath(repo, asked);
    liar.set(path, { kind: "honest", body: other });
    await assertRefused(await pull(viaBerth("liar", path), digest), digest);
    assert.equal(await stored(sha256(other)), false);
  });

  it("hangs up on a body trickled at one byte a second instead of waiting for it, and stores nothing", async () => {
    const body = randomBytes(64 * KiB);
    const { path, digest } = LyingUpstream.blobPath(repo, body);
    liar.set(path, { kind: "trickle-body", body, bytes: 1, intervalMs: 1000 });
    await assertRefused(await pull(viaBerth("liar", path), digest), digest);
    await waitFor(async () => liar.pending(path) === 0, "berth hangs up on the upstream");
    // At a byte a second, what the upstream managed to send bounds how long berth waited.
    assert.ok((liar.bytesSent.get(path) ?? 0) < 30, `berth waited for ${liar.bytesSent.get(path)} trickled bytes`);
  });

  it("answers 503 when the upstream trickles its headers a byte at a time, within the read timeout", async () => {
    const body = randomBytes(1 * KiB);
    const { path, digest } = LyingUpstream.blobPath(repo, body);
    liar.set(path, { kind: "trickle-headers", body, intervalMs: 500 });
    const outcome = await pull(viaBerth("liar", path), digest);
    assert.equal(outcome.status, 503);
    assert.equal(outcome.code, "UNAVAILABLE");
    await waitFor(async () => liar.pending(path) === 0, "berth hangs up on the upstream");
  });

  it("cuts a transfer whose connection is reset mid-body, stores nothing, and backs off the upstream", async () => {
    const body = randomBytes(512 * KiB);
    const { path, digest } = LyingUpstream.blobPath(repo, body);
    liar.set(path, { kind: "reset", body, sendBytes: 100 * KiB });
    await assertRefused(await pull(viaBerth("liar", path), digest), digest);
    const asked = liar.count(path);
    const again = await pull(viaBerth("liar", path), digest);
    assert.equal(again.status, 503);
    assert.ok(Number(again.retryAfter) > 0, "the client is told when to retry");
    assert.equal(liar.count(path), asked, "berth does not ask a backing-off upstream");
  });

  it("contacts a failing upstream once per reference for a burst of 200 clients, and not at all for 100 more while it backs off", async () => {
    const body = randomBytes(16 * KiB);
    const { path, digest } = LyingUpstream.blobPath(repo, body);
    const manifestPath = `/v2/${repo}/manifests/v1`;
    // Slow failures, so that the whole burst arrives while the first requests are still failing.
    liar.set(path, { kind: "status", status: 500, delayMs: 500 });
    liar.set(manifestPath, { kind: "status", status: 502, delayMs: 500 });
    const storm = await Promise.all([
      ...Array.from({ length: 100 }, () => pull(viaBerth("liar", path), digest)),
      ...Array.from({ length: 100 }, () => pull(viaBerth("liar", manifestPath), "")),
    ]);
    assert.deepEqual([liar.count(path), liar.count(manifestPath)], [1, 1], "one upstream request per reference for the burst");
    for (let i = 0; i < 100; i++) storm.push(await pull(viaBerth("liar", i % 2 ? path : manifestPath), digest));
    assert.deepEqual([liar.count(path), liar.count(manifestPath)], [1, 1], "none while backing off");
    assert.deepEqual(new Set(storm.map((o) => o.status)), new Set([503]), "every client gets 503");
    assert.ok(storm.every((o) => o.code === "UNAVAILABLE" && Number(o.retryAfter) > 0), "with an OCI error and Retry-After");
  });

  it("retries an upstream in a 5xx storm only as often as its Retry-After allows", async () => {
    const manifestPath = `/v2/${repo}/manifests/v1`;
    liar.set(manifestPath, { kind: "status", status: 503, headers: { "retry-after": "1" } });
    const started = Date.now();
    let requests = 0;
    while (Date.now() - started < 3500) {
      const outcome = await pull(viaBerth("liar", manifestPath), "");
      assert.equal(outcome.status, 503);
      requests++;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const elapsedSeconds = (Date.now() - started) / 1000;
    const contacts = liar.count(manifestPath);
    assert.ok(contacts >= 2, `the upstream is retried once its Retry-After has passed (${contacts} contacts)`);
    assert.ok(contacts <= Math.floor(elapsedSeconds) + 1, `${contacts} upstream contacts for ${requests} requests in ${elapsedSeconds} s of a 1 s Retry-After`);
  });

  it("keeps serving from a healthy upstream while another upstream leaves a request hanging", async () => {
    const stalled = LyingUpstream.blobPath(repo, randomBytes(1 * KiB));
    liar.set(stalled.path, { kind: "silence" });
    let hangingSettled = false;
    const hanging = pull(viaBerth("patient", stalled.path), stalled.digest).finally(() => (hangingSettled = true));
    await waitFor(async () => liar.pending(stalled.path) === 1, "the stalled request reached its upstream");

    const blob = randomBytes(64 * KiB);
    const blobDigest = honest.addBlob(repo, blob);
    const manifest = honest.addManifest(repo, { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: blobDigest, size: blob.length }, layers: [] }, "v1");
    let served = 0;
    for (let round = 0; round < 20; round++) {
      await Promise.all([
        getVerified(`${berth.url}/v2/honest/${repo}/manifests/v1`, manifest, { accept: "application/vnd.oci.image.manifest.v1+json" }),
        ...Array.from({ length: 9 }, () => getVerified(`${berth.url}/v2/honest/${repo}/blobs/${blobDigest}`, blobDigest)),
      ]);
      served += 10;
    }
    assert.equal(served, 200);
    assert.equal(hangingSettled, false, "the stalled upstream's request is still pending while the healthy one served 200");
    assert.equal(liar.pending(stalled.path), 1);
    liar.disconnectAll();
    assert.equal((await hanging).status, 503, "the stalled request ends once its upstream hangs up");
  });
});

describe("the upstream client against upstreams that close their connections", () => {
  let liar: LyingUpstream;
  let client: UpstreamClient;

  before(async () => {
    liar = await new LyingUpstream().start();
    client = new UpstreamClient({ host: liar.host, url: liar.url, connectTimeoutMs: 2000, readTimeoutMs: 5000 }, { lookup: async () => [] });
  });
  after(async () => {
    await client?.close();
    await liar?.stop();
  });

  /** A blob GET read slowly (as a busy disk reads it), so that undici's parser pauses again and again, also when the upstream closes. */
  async function readSlowly(path: string): Promise<Buffer | Error> {
    const [repository, digest] = path.slice("/v2/".length).split("/blobs/");
    try {
      const blob = await client.blob(repository, digest);
      const chunks: Buffer[] = [];
      for await (const chunk of blob.body as AsyncIterable<Buffer>) {
        chunks.push(chunk);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return Buffer.concat(chunks);
    } catch (err) {
      return err as Error;
    }
  }

  // Each of these crashed berth's process (undici#5360) before close-safe-interceptor.ts.
  it("reads a whole body whose upstream closed the connection while the reader was behind", async () => {
    const body = randomBytes(512 * KiB);
    const { path } = LyingUpstream.blobPath("close/whole", body);
    liar.set(path, { kind: "honest", body });
    const read = await readSlowly(path);
    assert.ok(Buffer.isBuffer(read) && read.equals(body));
  });

  it("reads a body delimited only by the close while the reader was behind", async () => {
    const body = randomBytes(512 * KiB);
    const { path } = LyingUpstream.blobPath("close/delimited", body);
    liar.set(path, { kind: "close-delimited", body });
    const read = await readSlowly(path);
    assert.ok(Buffer.isBuffer(read) && read.equals(body));
  });

  it("fails (and does not crash on) a body cut short by the close while the reader was behind", async () => {
    const body = randomBytes(512 * KiB);
    const { path } = LyingUpstream.blobPath("close/short", body);
    liar.set(path, { kind: "content-length", body, declared: body.length + KiB });
    assert.ok((await readSlowly(path)) instanceof Error);
  });
});

/** Polls `check` (up to 30 s) for something that follows an answer asynchronously. */
async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 20))) {
    if (await check()) return;
  }
  assert.fail(`timed out waiting until ${what}`);
}
