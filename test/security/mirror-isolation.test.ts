import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { startMirror } from "../mirror/mirror-fixture.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { pushImage, sha256 } from "../support/push-image.js";
import { EvilUpstream } from "./evil-upstream.js";
import { TokenClient, type Answer } from "./token-client.js";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const MANIFEST_ACCEPT = { accept: "application/vnd.oci.image.manifest.v1+json" };

/**
 * Two tenants and anonymous clients on one berth in token mode, in front of a private origin
 * (only tenant team-a has credentials for it), and of an anonymous upstream that lies on
 * purpose (also the default upstream). The review that found these holes broke tenant
 * isolation through every route; each test pins a class of attack, through every route.
 */
describe("mirrored content stays with whoever its own upstream let see it", () => {
  let privateOrigin: OriginRegistry;
  /** A private origin berth itself has credentials for: policy alone decides who reads it. */
  let sharedOrigin: OriginRegistry;
  let evil: EvilUpstream;
  let dir: string;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  let secret: Awaited<ReturnType<typeof pushImage>>;
  let alice: TokenClient;
  let bob: TokenClient;
  let anonymous: TokenClient;

  before(async () => {
    privateOrigin = await OriginRegistry.start({ auth: { kind: "htpasswd", users: { owner: "owner-secret" } } });
    secret = await pushImage(privateOrigin.url, "team/app", "v1", basic("owner", "owner-secret"));
    sharedOrigin = await OriginRegistry.start({ auth: { kind: "htpasswd", users: { berth: "berth-secret" } } });
    await pushImage(sharedOrigin.url, "library/x", "v1", basic("berth", "berth-secret"));
    evil = await EvilUpstream.start();
    dir = await mkdtemp(join(tmpdir(), "berth-security-"));
    await writeFile(join(dir, "team-a.json"), JSON.stringify({ auths: { [privateOrigin.host]: { auth: Buffer.from("owner:owner-secret").toString("base64") } } }));
    await writeFile(join(dir, "berth.json"), JSON.stringify({ auths: { [sharedOrigin.host]: { auth: Buffer.from("berth:berth-secret").toString("base64") } } }));
    const hash = bcrypt.hashSync("pw", 4);
    berth = await startMirror(
      [
        { host: privateOrigin.host, url: privateOrigin.url, prefix: "private", tagPolicy: "IfNotPresent", tagTTL: "1h" },
        { host: evil.host, url: evil.url, prefix: "evil" },
        { host: sharedOrigin.host, url: sharedOrigin.url, prefix: "shared", credentials: [join(dir, "berth.json")] },
      ],
      {
        defaultUpstream: evil.host,
        auth: {
          mode: "token",
          users: [
            { username: "alice", passwordHash: hash, tenant: "team-a" },
            { username: "bob", passwordHash: hash, tenant: "team-b" },
            { username: "dave", passwordHash: hash },
          ],
          policy: [
            { subjects: ["dave"], repositories: ["shared/**"], actions: ["pull"] },
            { tenants: ["team-a", "team-b"], repositories: ["**"], actions: ["pull"], catalog: true },
            { tenants: ["team-a"], repositories: ["team-a/**"], actions: ["push"] },
            { tenants: ["team-b"], repositories: ["team-b/**"], actions: ["push"] },
            { anonymous: true, repositories: ["evil/**"], actions: ["pull"] },
            // Meant for Docker Hub's official images; it must open nothing on another upstream.
            { anonymous: true, repositories: ["library/*"], actions: ["pull"] },
          ],
        },
        tenants: [{ name: "team-a", credentials: [join(dir, "team-a.json")] }],
      },
    );
    alice = new TokenClient(berth.url, { username: "alice", password: "pw" });
    bob = new TokenClient(berth.url, { username: "bob", password: "pw" });
    anonymous = new TokenClient(berth.url);
    // Tenant A pulls its private image: its bytes are now in berth's one store.
    assert.equal((await alice.request("/v2/private/team/app/manifests/v1", { headers: MANIFEST_ACCEPT })).status, 200);
    const layer = await alice.request(`/v2/private/team/app/blobs/${secret.layer}`);
    assert.equal(sha256(layer.body), secret.layer);
    await berth.fills.settled();
  });
  after(async () => {
    await berth?.stop();
    await privateOrigin?.close();
    await sharedOrigin?.close();
    await evil?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** The same repository of the lying upstream through each route: path prefix, containerd's ?ns=, the default upstream. */
  const routes = (repository: string, rest: string) => [`/v2/evil/${repository}/${rest}`, `/v2/${repository}/${rest}?ns=${encodeURIComponent(evil.host)}`, `/v2/${repository}/${rest}`];
  const leaked = (answer: Answer) => answer.status < 300 && answer.body.includes(secret.layerBytes.subarray(0, 64));

  it("never serves a cached private blob through an upstream that only names it in a manifest", async () => {
    evil.manifest("lure/app", "v1", {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: secret.config, size: 80 },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: secret.layer, size: secret.layerBytes.length }],
    });
    for (const [who, client] of [["bob", bob], ["anonymous", anonymous]] as const) {
      for (const [manifestPath, blobPath] of routes("lure/app", "manifests/v1").map((m, i) => [m, routes("lure/app", `blobs/${secret.layer}`)[i]])) {
        assert.equal((await client.request(manifestPath, { headers: MANIFEST_ACCEPT })).status, 200, `${who} ${manifestPath}`);
        const askedBefore = evil.asked(`/v2/lure/app/blobs/${secret.layer}`);
        for (const headers of [{}, { range: "bytes=0-99" }] as Record<string, string>[]) {
          const answer = await client.request(blobPath, { headers });
          assert.equal(leaked(answer), false, `${who} ${blobPath} ${JSON.stringify(headers)}: leaked`);
          assert.equal(answer.status, 404, `${who} ${blobPath}: ${answer.status}`);
          assert.equal(answer.code, "BLOB_UNKNOWN");
          assert.equal(answer.headers.get("berth-cache"), null);
        }
        assert.ok(evil.asked(`/v2/lure/app/blobs/${secret.layer}`) > askedBefore, `${blobPath}: the lying upstream was asked for the bytes`);
      }
    }
  });

  it("never serves a cached private blob through an upstream that merely answers a HEAD for it", async () => {
    evil.claim("claim/app", secret.layer, secret.layerBytes.length);
    for (const [who, client] of [["bob", bob], ["anonymous", anonymous]] as const) {
      for (const path of routes("claim/app", `blobs/${secret.layer}`)) {
        const head = await client.request(path, { method: "HEAD" });
        // A HEAD repeats what the upstream says; it must not say berth has the bytes.
        assert.notEqual(head.headers.get("berth-cache"), "hit", `${who} HEAD ${path}`);
        for (const headers of [{}, { range: "bytes=10-20" }] as Record<string, string>[]) {
          const answer = await client.request(path, { headers });
          assert.equal(leaked(answer), false, `${who} GET ${path}: leaked`);
          assert.equal(answer.status, 404, `${who} GET ${path} ${JSON.stringify(headers)}: ${answer.status}`);
        }
      }
    }
  });

  it("mounts into a hosted repository only what the source repository itself may serve to the caller", async () => {
    const scopes = (from: string, into: string) => [`repository:${into}:pull,push`, `repository:${from}:pull`];
    const mount = async (client: TokenClient, user: string, from: string, into: string) => {
      const token = await client.token(`${berth.url}/token`, "berth", scopes(from, into));
      const response = await fetch(`${berth.url}/v2/${into}/blobs/uploads/?mount=${secret.layer}&from=${from}`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      await response.arrayBuffer();
      const head = await fetch(`${berth.url}/v2/${into}/blobs/${secret.layer}`, { method: "HEAD", headers: { authorization: `Bearer ${await client.token(`${berth.url}/token`, "berth", scopes(from, into))}` } });
      return { status: response.status, held: head.status, user };
    };
    for (const from of ["evil/lure/app", "evil/claim/app", "private/team/app"]) {
      const stolen = await mount(bob, "bob", from, "team-b/stolen");
      assert.deepEqual(stolen, { status: 202, held: 404, user: "bob" }, `from ${from}`);
    }
    // Without from, berth looks where the blob was linked: only private/team/app, which bob cannot read.
    const mountWithoutFrom = async (client: TokenClient, into: string) => {
      const token = await client.token(`${berth.url}/token`, "berth", [`repository:${into}:pull,push`]);
      const response = await fetch(`${berth.url}/v2/${into}/blobs/uploads/?mount=${secret.layer}`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      await response.arrayBuffer();
      const head = await fetch(`${berth.url}/v2/${into}/blobs/${secret.layer}`, { method: "HEAD", headers: { authorization: `Bearer ${token}` } });
      return { status: response.status, held: head.status };
    };
    assert.deepEqual(await mountWithoutFrom(bob, "team-b/found"), { status: 202, held: 404 });
    assert.deepEqual(await mountWithoutFrom(alice, "team-a/found"), { status: 201, held: 200 });
    assert.deepEqual(await mount(alice, "alice", "private/team/app", "team-a/copy"), { status: 201, held: 200, user: "alice" });
  });

  it("decides on PREFIX/REPO whichever route led to a mirrored repository", async () => {
    // Anonymous may pull evil/**: the same repository through ?ns= and the default upstream is the same policy name.
    for (const path of routes("lure/app", "manifests/v1")) {
      for (const scopes of ["challenge", "addressed"] as const) {
        assert.equal((await anonymous.request(path, { headers: MANIFEST_ACCEPT, scopes })).status, 200, `${path} asking for ${scopes} scopes`);
      }
    }
    // ...and no name lets anonymous reach the private upstream.
    for (const path of ["/v2/private/team/app/manifests/v1", `/v2/team/app/manifests/v1?ns=${encodeURIComponent(privateOrigin.host)}`]) {
      for (const scopes of ["challenge", "addressed"] as const) {
        const answer = await anonymous.request(path, { headers: MANIFEST_ACCEPT, scopes });
        assert.equal(answer.status, 401, `${path} (${scopes})`);
      }
    }
  });

  it("never lets a grant for one upstream's names open the same names on another upstream", async () => {
    const paths = ["/v2/shared/library/x/manifests/v1", `/v2/library/x/manifests/v1?ns=${encodeURIComponent(sharedOrigin.host)}`];
    for (const path of paths) {
      for (const scopes of ["challenge", "addressed"] as const) {
        const answer = await anonymous.request(path, { headers: MANIFEST_ACCEPT, scopes });
        assert.equal(answer.status, 401, `anonymous ${path} (${scopes} scopes): ${answer.status}`);
        assert.equal((await bob.request(path, { headers: MANIFEST_ACCEPT, scopes })).status, 200, `bob ${path} (${scopes} scopes)`);
      }
    }
  });

  it("asks the upstream once for every principal that reaches it with berth's own credentials", async () => {
    const image = await bob.request("/v2/shared/library/x/manifests/v1", { headers: MANIFEST_ACCEPT });
    assert.equal(image.status, 200);
    const digest = sha256(image.body);
    const asked = (await sharedOrigin.accessLog()).length;
    const dave = new TokenClient(berth.url, { username: "dave", password: "pw" });
    assert.equal((await dave.request(`/v2/shared/library/x/manifests/${digest}`, { headers: MANIFEST_ACCEPT })).status, 200);
    assert.equal((await sharedOrigin.accessLog()).length, asked, "dave's access is bob's: the same credentials reach the upstream");
  });

  it("lists referrers per viewer: each asks the upstream with its own credentials", async () => {
    const referrers = `/v2/private/team/app/referrers/${secret.manifest}`;
    const upstreamPath = `/v2/team/app/referrers/${secret.manifest}`;
    assert.equal((await alice.request(referrers)).status, 200);
    const asked = await privateOrigin.count("GET", upstreamPath);
    // Distribution 2.8 has no referrers API (404 before it checks credentials): bob gets what it tells him, an empty list.
    const answer = await bob.request(referrers);
    assert.deepEqual(JSON.parse(answer.body.toString()).manifests, []);
    assert.equal(await privateOrigin.count("GET", upstreamPath), asked + 1, "bob's answer came from the upstream, not from alice's");
  });

  it("lists in the catalog only the hosted repositories the viewer may pull", async () => {
    const catalogAs = async (client: TokenClient) => (JSON.parse((await client.request("/v2/_catalog", { scopes: "challenge" })).body.toString()) as { repositories: string[] }).repositories;
    const restricted = await startMirror([], {
      auth: {
        mode: "token",
        users: [
          { username: "alice", passwordHash: bcrypt.hashSync("pw", 4), tenant: "team-a" },
          { username: "bob", passwordHash: bcrypt.hashSync("pw", 4), tenant: "team-b" },
        ],
        policy: [
          { tenants: ["team-a", "team-b"], catalog: true },
          { roles: ["user"], repositories: ["{tenant}/**"], actions: ["pull", "push"] },
        ],
      },
    });
    try {
      for (const [user, repository] of [["alice", "team-a/app"], ["bob", "team-b/app"]]) {
        const client = new TokenClient(restricted.url, { username: user, password: "pw" });
        await pushImage(restricted.url, repository, "v1", `Bearer ${await client.token(`${restricted.url}/token`, "berth", [`repository:${repository}:pull,push`])}`);
      }
      assert.deepEqual(await catalogAs(new TokenClient(restricted.url, { username: "alice", password: "pw" })), ["team-a/app"]);
      assert.deepEqual(await catalogAs(new TokenClient(restricted.url, { username: "bob", password: "pw" })), ["team-b/app"]);
    } finally {
      await restricted.stop();
    }
  });

  it("puts Berth-Cache on successful answers only", async () => {
    const blob = `/v2/private/team/app/blobs/${secret.layer}`;
    const refusals = [await bob.request(blob), await bob.request(blob, { method: "HEAD" }), await anonymous.request(blob), await alice.request(`/v2/private/team/app/blobs/sha256:${"0".repeat(64)}`)];
    assert.deepEqual(
      refusals.map((r) => [r.status, r.headers.get("berth-cache")]),
      [
        [403, null],
        [403, null],
        [401, null],
        [404, null],
      ],
    );
    assert.equal((await alice.request(blob)).headers.get("berth-cache"), "hit");
  });

  // Stops the private origin, which then backs off for a while: it runs after the tests that need it up.
  it("lists a mirrored repository's tags per viewer, from the upstream and from what berth cached", async () => {
    const tags = "/v2/private/team/app/tags/list";
    assert.deepEqual(JSON.parse((await alice.request(tags)).body.toString()).tags, ["v1"]);
    assert.equal((await bob.request(tags)).status, 403);
    assert.deepEqual(JSON.parse((await alice.request(tags)).body.toString()).tags, ["v1"]);
    const refused = await bob.request(tags);
    assert.equal(refused.status, 403, "alice's answer is not bob's");
    assert.equal(refused.body.includes("v1"), false);
    await privateOrigin.stop();
    try {
      const offline = await bob.request(tags);
      assert.notEqual(offline.status, 200, "the upstream is down: bob gets no cached tag list");
      assert.equal(offline.body.includes('"v1"'), false);
      assert.deepEqual(JSON.parse((await alice.request(tags)).body.toString()).tags, ["v1"], "alice's access was confirmed: she gets what berth cached");
    } finally {
      await privateOrigin.restart();
    }
  });

  it("never names in an error a digest the caller asked for only by tag", async () => {
    await berth.close();
    // The same storage, now offline: berth answers from what it cached, to whom it may.
    const offline = await startMirror([{ host: privateOrigin.host, url: privateOrigin.url, prefix: "private", tagPolicy: "Never" }], {
      storage: { root: berth.root },
      auth: {
        mode: "token",
        users: [{ username: "bob", passwordHash: bcrypt.hashSync("pw", 4), tenant: "team-b" }],
        policy: [{ tenants: ["team-b"], repositories: ["**"], actions: ["pull"] }],
      },
    });
    try {
      const client = new TokenClient(offline.url, { username: "bob", password: "pw" });
      for (const path of ["/v2/private/team/app/manifests/v1", `/v2/team/app/manifests/v1?ns=${encodeURIComponent(privateOrigin.host)}`]) {
        const answer = await client.request(path, { headers: MANIFEST_ACCEPT });
        assert.equal(answer.status, 404, path);
        assert.equal(answer.body.includes("sha256:"), false, `${path}: ${answer.body.toString()}`);
        assert.equal([...answer.headers.values()].some((value) => value.includes("sha256:")), false);
      }
    } finally {
      await offline.close();
      berth = await startMirror([], { storage: { root: berth.root } });
    }
  });
});
