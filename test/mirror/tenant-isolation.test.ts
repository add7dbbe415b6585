import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { OriginRegistry } from "../support/origin-registry.js";
import { pushImage, sha256 } from "../support/push-image.js";
import { startMirror } from "./mirror-fixture.js";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("tenant isolation of mirrored content", () => {
  let privateOrigin: OriginRegistry;
  let publicOrigin: OriginRegistry;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  let dir: string;
  let privateImage: { manifest: string; layer: string };
  let publicImage: { manifest: string; layer: string };

  before(async () => {
    privateOrigin = await OriginRegistry.start({ auth: { kind: "htpasswd", users: { owner: "owner-secret" } } });
    publicOrigin = await OriginRegistry.start({ foreignLayerUrls: "^https://layers\\.example\\.com/" });
    privateImage = await pushImage(privateOrigin.url, "team/app", "v1", basic("owner", "owner-secret"));
    publicImage = await pushImage(publicOrigin.url, "library/tool", "v1");
    dir = await mkdtemp(join(tmpdir(), "berth-tenants-"));
    const dockerConfig = (user: string, password: string) =>
      JSON.stringify({ auths: { [privateOrigin.host]: { auth: Buffer.from(`${user}:${password}`).toString("base64") } } });
    await writeFile(join(dir, "team-a.json"), dockerConfig("owner", "owner-secret"));
    await writeFile(join(dir, "team-c.json"), dockerConfig("owner", "owner-secret"));
    const hash = bcrypt.hashSync("pw", 4);
    berth = await startMirror(
      [
        { host: privateOrigin.host, url: privateOrigin.url, prefix: "private", tagPolicy: "IfNotPresent", tagTTL: "1h" },
        { host: publicOrigin.host, url: publicOrigin.url, prefix: "public" },
      ],
      {
        auth: {
          mode: "token",
          users: [
            { username: "alice", passwordHash: hash, tenant: "team-a" },
            { username: "bob", passwordHash: hash, tenant: "team-b" },
            { username: "carol", passwordHash: hash, tenant: "team-c" },
          ],
          policy: [{ tenants: ["team-a", "team-b", "team-c"], repositories: ["**"], actions: ["pull"] }],
        },
        tenants: [
          { name: "team-a", credentials: [join(dir, "team-a.json")] },
          { name: "team-c", credentials: [join(dir, "team-c.json")] },
        ],
      },
    );
  });
  after(async () => {
    await berth?.stop();
    await privateOrigin?.close();
    await publicOrigin?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const tokenFor = async (user: string, repository: string) => {
    const response = await fetch(`${berth.url}/token?service=berth&scope=repository:${repository}:pull`, { headers: { authorization: basic(user, "pw") } });
    assert.equal(response.status, 200);
    return ((await response.json()) as { token: string }).token;
  };
  const get = async (user: string, path: string) => {
    const repository = path.split("/").slice(0, -2).join("/");
    const response = await fetch(`${berth.url}/v2/${path}`, {
      headers: { authorization: `Bearer ${await tokenFor(user, repository)}`, accept: "application/vnd.oci.image.manifest.v1+json" },
    });
    const body = Buffer.from(await response.arrayBuffer());
    return { status: response.status, body, code: response.status >= 400 ? (JSON.parse(body.toString()) as { errors: { code: string }[] }).errors[0].code : undefined };
  };

  it("serves a private image to the tenant whose credentials fetched it", async () => {
    assert.equal((await get("alice", "private/team/app/manifests/v1")).status, 200);
    const layer = await get("alice", `private/team/app/blobs/${privateImage.layer}`);
    assert.equal(layer.status, 200);
    assert.equal(sha256(layer.body), privateImage.layer);
  });

  it("refuses another tenant without upstream access, by tag and by digest, manifest and blob, warm", async () => {
    for (const path of ["private/team/app/manifests/v1", `private/team/app/manifests/${privateImage.manifest}`, `private/team/app/blobs/${privateImage.layer}`]) {
      const answer = await get("bob", path);
      assert.equal(answer.status, 403, `${path}: ${answer.status}`);
      assert.equal(answer.code, "DENIED");
      assert.notEqual(sha256(answer.body), privateImage.layer);
    }
  });

  it("serves another tenant whose own credentials the upstream accepts, and caches that confirmation", async () => {
    assert.equal((await get("carol", `private/team/app/manifests/${privateImage.manifest}`)).status, 200);
    const asked = (await privateOrigin.accessLog()).length;
    assert.equal((await get("carol", `private/team/app/blobs/${privateImage.layer}`)).status, 200);
    assert.equal((await get("carol", `private/team/app/manifests/${privateImage.manifest}`)).status, 200);
    assert.equal((await privateOrigin.accessLog()).length, asked, "a confirmed tenant is served from the cache without asking again");
  });

  it("does not take a public manifest's word for a blob it names where the upstream checks nothing", async () => {
    assert.equal((await get("alice", `private/team/app/blobs/${privateImage.layer}`)).status, 200, "the private layer is cached");
    // A foreign layer lives at its urls: the upstream never checked that this repository holds it.
    const lure = await pushImage(publicOrigin.url, "library/lure", "v1", undefined, {
      layers: [{ mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar", digest: privateImage.layer, size: 64 * 1024, urls: ["https://layers.example.com/base.tar"] }],
    });
    assert.equal((await get("bob", `public/library/lure/manifests/${lure.manifest}`)).status, 200);
    const leaked = await get("bob", `public/library/lure/blobs/${privateImage.layer}`);
    assert.equal(leaked.status, 404, "the upstream has no such blob in library/lure");
    assert.equal(leaked.code, "BLOB_UNKNOWN");
  });

  it("shares anonymously fetched public content between tenants without asking the upstream", async () => {
    assert.equal((await get("alice", "public/library/tool/manifests/v1")).status, 200);
    assert.equal((await get("alice", `public/library/tool/blobs/${publicImage.layer}`)).status, 200);
    const asked = (await publicOrigin.accessLog()).length;
    assert.equal((await get("bob", `public/library/tool/manifests/${publicImage.manifest}`)).status, 200);
    const layer = await get("bob", `public/library/tool/blobs/${publicImage.layer}`);
    assert.equal(layer.status, 200);
    assert.equal(sha256(layer.body), publicImage.layer);
    assert.equal((await publicOrigin.accessLog()).length, asked);
  });
});
