import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseExposition, sample } from "../metrics/exposition.js";
import { BerthProcess } from "../support/berth-process.js";
import { runCommand } from "../support/command.js";
import { listenOnLoopback, type LoopbackServer } from "../support/loopback-server.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { FakeUpstream } from "./fake-upstream.js";
import { startMirror } from "./mirror-fixture.js";
import { refusal } from "./upstream-refusal.js";

// The evil upstreams listen on 127.0.0.2: to berth's redirect rules another host than the
// node's own loopback services on 127.0.0.1 (berth itself, the sentinel), as a remote upstream is.
// Non-loopback targets name port 9 (discard): should a regression let berth connect, it reaches
// no metadata service or other real endpoint of the machine running the tests.


/** A server on 127.0.0.1 standing for a service of the node berth must never reach for an upstream; counts connections. */
async function startSentinel(): Promise<LoopbackServer & { connections: () => number; port: string }> {
  let connections = 0;
  const server = await listenOnLoopback((_req, res) => res.end("node-local secret"));
  server.server.on("connection", () => connections++);
  return { ...server, connections: () => connections, port: new URL(server.url).port };
}

describe("a mirror whose upstream redirects where berth must not go", () => {
  let evil: FakeUpstream;
  let sentinel: Awaited<ReturnType<typeof startSentinel>>;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  let counter = 0;

  before(async () => {
    evil = await new FakeUpstream().start("127.0.0.2");
    sentinel = await startSentinel();
    berth = await startMirror([{ host: evil.host, url: evil.url, prefix: "evil", connectTimeout: "2s", readTimeout: "2s" }]);
  });
  after(async () => {
    await berth?.stop();
    await evil?.stop();
    await sentinel?.stop();
  });

  /** A fresh repository holding one blob: backoff is per upstream and repository. */
  function blobIn(): { repo: string; path: string; bytes: Buffer } {
    const repo = `team/app${counter++}`;
    const bytes = randomBytes(64 * 1024);
    const digest = evil.addBlob(repo, bytes);
    return { repo, path: `/v2/${repo}/blobs/${digest}`, bytes };
  }
  const viaBerth = (path: string) => fetch(`${berth.url}/v2/evil/${path.replace(/^\/v2\//, "")}`);

  const targets: [string, () => string, RegExp][] = [
    ["berth's own /ui on loopback", () => `${berth.url}/ui`, /redirect to a loopback address/],
    ["the cloud metadata service (link-local)", () => "http://169.254.169.254:9/latest/meta-data/", /redirect to a link-local address/],
    ["a private 10.x address", () => "http://10.0.0.1:9/v2/", /redirect to a private address/],
    ["a carrier-grade NAT address", () => "http://100.64.0.1:9/", /redirect to a shared \(carrier-grade NAT\) address/],
    ["a name that resolves to loopback", () => `http://localhost:${sentinel.port}/`, /redirect to a loopback address/],
    ["a decimal IPv4 literal (2130706433 is 127.0.0.1)", () => `http://2130706433:${sentinel.port}/`, /redirect to a loopback address/],
    ["a hex and octal IPv4 literal", () => `http://0x7f.0.0.01:${sentinel.port}/`, /redirect to a loopback address/],
    ["an IPv4-mapped IPv6 literal", () => `http://[::ffff:127.0.0.1]:${sentinel.port}/`, /redirect to a loopback address/],
    ["the unspecified address, which Linux connects to this host", () => `http://0.0.0.0:${sentinel.port}/`, /redirect to a special-purpose address/],
    ["a URL with credentials before the host", () => `http://registry.example@127.0.0.1:${sentinel.port}/`, /redirect to a URL carrying credentials/],
    ["a file: URL", () => "file:///etc/passwd", /redirect to a file: URL/],
  ];
  for (const [name, location, reason] of targets) {
    it(`refuses a blob redirected to ${name}, with a 502 that names the refusal, not the address`, async () => {
      const { path } = blobIn();
      const target = location();
      evil.setFault(path, { kind: "redirect", location: target });
      const message = await refusal(await viaBerth(path));
      assert.match(message, reason);
      const { hostname } = new URL(target);
      for (const part of [hostname, sentinel.port, new URL(berth.url).port]) assert.ok(!part || !message.includes(part), `the message leaks the target: ${message}`);
      assert.equal(sentinel.connections(), 0, "berth connected to the node-local service");
    });
  }

  it("refuses a manifest redirected to the cloud metadata service", async () => {
    const { repo } = blobIn();
    evil.setFault(`/v2/${repo}/manifests/v1`, { kind: "redirect", location: "http://169.254.169.254:9/latest/meta-data/" });
    assert.match(await refusal(await viaBerth(`${repo}/manifests/v1`)), /redirect to a link-local address/);
  });

  it("refuses a tag list redirected to a name that resolves to loopback", async () => {
    const { repo } = blobIn();
    evil.setFault(`/v2/${repo}/tags/list`, { kind: "redirect", location: `http://localhost:${sentinel.port}/v2/${repo}/tags/list` });
    assert.match(await refusal(await viaBerth(`${repo}/tags/list`)), /redirect to a loopback address/);
    assert.equal(sentinel.connections(), 0);
  });

  it("refuses a referrers answer redirected to berth's own /ui", async () => {
    const { repo } = blobIn();
    const subject = `sha256:${"a".repeat(64)}`;
    evil.setFault(`/v2/${repo}/referrers/${subject}`, { kind: "redirect", location: `${berth.url}/ui` });
    assert.match(await refusal(await viaBerth(`${repo}/referrers/${subject}`)), /redirect to a loopback address/);
  });

  for (const [name, realm, reason] of [
    ["a private address", () => "http://10.0.0.1:9/token", /token realm to a private address/],
    ["berth's own /ui", () => `${berth.url}/ui`, /token realm to a loopback address/],
    ["a name that resolves to loopback", () => `http://localhost:${sentinel.port}/token`, /token realm to a loopback address/],
    ["a file: URL", () => "file:///etc/shadow", /token realm to a file: URL/],
  ] as [string, () => string, RegExp][]) {
    it(`refuses a token realm at ${name}`, async () => {
      const { repo } = blobIn();
      evil.setFault(`/v2/${repo}/manifests/v1`, { kind: "status", status: 401, headers: { "www-authenticate": `Bearer realm="${realm()}",service="evil"` } });
      assert.match(await refusal(await viaBerth(`${repo}/manifests/v1`)), reason);
      assert.equal(sentinel.connections(), 0);
    });
  }

  it("follows five redirects and refuses the sixth", async () => {
    const chain = (repo: string, path: string, hops: number) => {
      for (let hop = 0; hop < hops; hop++) evil.setFault(hop === 0 ? path : `/hop/${repo}/${hop}`, { kind: "redirect", location: hop === hops - 1 ? path.replace("/blobs/", "/blobs-at/") : `/hop/${repo}/${hop + 1}` });
    };
    const five = blobIn();
    chain(five.repo, five.path, 5);
    evil.addBlob(five.repo, five.bytes);
    // The last hop lands on a path the fake serves the blob under.
    (evil as unknown as { content: Map<string, unknown> }).content.set(five.path.replace("/blobs/", "/blobs-at/"), { bytes: five.bytes, mediaType: "application/octet-stream" });
    const served = await viaBerth(five.path);
    assert.equal(served.status, 200);
    assert.ok(Buffer.from(await served.arrayBuffer()).equals(five.bytes));

    const six = blobIn();
    chain(six.repo, six.path, 6);
    assert.match(await refusal(await viaBerth(six.path)), /more than 5 redirects/);
  });

  it("follows a redirect to another path of the upstream's own origin", async () => {
    const { repo, path, bytes } = blobIn();
    const elsewhere = `/storage/${repo}/blob`;
    (evil as unknown as { content: Map<string, unknown> }).content.set(elsewhere, { bytes, mediaType: "application/octet-stream" });
    evil.setFault(path, { kind: "redirect", location: elsewhere, status: 302 });
    const response = await viaBerth(path);
    assert.equal(response.status, 200);
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(bytes));
  });

  it("asks the upstream again after a refused redirect: a definite bad answer, not an outage to back off from", async () => {
    const { path } = blobIn();
    evil.setFault(path, { kind: "redirect", location: "http://169.254.169.254:9/" });
    await refusal(await viaBerth(path));
    await refusal(await viaBerth(path));
    assert.equal(evil.count("GET", path), 2);
  });

  it("never requested berth's own /ui, and counts every refusal on the upstream's metrics", async () => {
    const samples = parseExposition(await (await fetch(`${berth.url}/metrics`)).text());
    for (const status of ["200", "401", "403", "404", "500"]) assert.equal(sample(samples, "berth_http_requests_total", { route: "ui", status }), undefined);
    assert.ok((sample(samples, "berth_upstream_refused_redirects_total", { upstream: evil.host }) ?? 0) >= targets.length + 8);
  });
});

describe("a mirror whose upstream redirects to another port of its own address", () => {
  let work: TempDir;
  let registry: FakeUpstream;
  let cdn: FakeUpstream;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  const authorization = `Basic ${Buffer.from("puller:s3cret").toString("base64")}`;

  before(async () => {
    work = await makeTempDir("hostile-redirects-auth");
    registry = await new FakeUpstream().start("127.0.0.2");
    cdn = await new FakeUpstream().start("127.0.0.2");
    registry.requiredAuthorization = authorization;
    const configJson = join(work.path, "config.json");
    await writeFile(configJson, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from("puller:s3cret").toString("base64") } } }));
    berth = await startMirror([{ host: registry.host, url: registry.url, prefix: "reg", credentials: [configJson] }]);
  });
  after(async () => {
    await berth?.stop();
    await registry?.stop();
    await cdn?.stop();
    await work?.remove();
  });

  it("follows it (the upstream lives there) without berth's Authorization", async () => {
    const bytes = randomBytes(32 * 1024);
    const digest = cdn.addBlob("team/app", bytes);
    registry.setFault(`/v2/team/app/blobs/${digest}`, { kind: "redirect", location: `${cdn.url}/v2/team/app/blobs/${digest}?signature=abc` });
    const response = await fetch(`${berth.url}/v2/reg/team/app/blobs/${digest}`);
    assert.equal(response.status, 200);
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(bytes));
    assert.ok(registry.requests.some((r) => r.authorization === authorization), "berth authenticated to the registry");
    assert.deepEqual(
      cdn.requests.map((r) => r.authorization),
      [undefined],
      "the CDN got berth's credentials",
    );
  });
});

describe("a mirror of an https upstream", () => {
  let work: TempDir;
  let registry: FakeUpstream;
  let plain: FakeUpstream;
  let berth: BerthProcess;

  before(async () => {
    work = await makeTempDir("hostile-redirects-tls");
    const key = join(work.path, "key.pem");
    const cert = join(work.path, "cert.pem");
    await runCommand("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.2", "-addext", "subjectAltName=IP:127.0.0.2"]);
    registry = await new FakeUpstream({ key: await readFile(key), cert: await readFile(cert) }).start("127.0.0.2");
    plain = await new FakeUpstream().start("127.0.0.2");
    berth = await BerthProcess.start({
      config: { upstreams: [{ host: registry.host, url: registry.url, prefix: "tls" }] },
      env: { NODE_EXTRA_CA_CERTS: cert },
    });
  });
  after(async () => {
    await berth?.close();
    await registry?.stop();
    await plain?.stop();
    await work?.remove();
  });

  it("serves a blob over https, and refuses a redirect down to plain http even on the upstream's own address", async () => {
    const bytes = randomBytes(16 * 1024);
    const served = registry.addBlob("team/app", bytes);
    const response = await fetch(`${berth.url}/v2/tls/team/app/blobs/${served}`);
    assert.equal(response.status, 200, "berth trusts the test certificate");
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(bytes));

    const other = randomBytes(16 * 1024);
    const digest = plain.addBlob("team/app", other);
    registry.setFault(`/v2/team/app/blobs/${digest}`, { kind: "redirect", location: `${plain.url}/v2/team/app/blobs/${digest}` });
    assert.match(await refusal(await fetch(`${berth.url}/v2/tls/team/app/blobs/${digest}`)), /redirect to plain http from https/);
    assert.equal(plain.requests.length, 0);
  });
});
