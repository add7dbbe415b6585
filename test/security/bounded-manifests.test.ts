import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { startMirror } from "../mirror/mirror-fixture.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { pushImage, sha256 } from "../support/push-image.js";
import { EvilUpstream } from "./evil-upstream.js";
import { TokenClient } from "./token-client.js";

const REFERENCES = 25_000;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** Every file under a directory, recursively. */
async function countFiles(dir: string): Promise<number> {
  let count = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    count += entry.isDirectory() ? await countFiles(join(dir, entry.name)) : 1;
  }
  return count;
}

function manifestNaming(layers: { digest: string; size: number }[], config: { digest: string; size: number }) {
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: layers.map((layer) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer })),
  };
}

/**
 * One manifest may name tens of thousands of digests. The work berth does for it, and the files
 * it writes, must not grow with that number, nor again for every tenant that reads it.
 */
describe("a manifest with thousands of references costs berth a bounded amount of work", () => {
  let origin: OriginRegistry;
  let evil: EvilUpstream;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  const tenants = ["alice", "bob", "carol"];

  before(async () => {
    origin = await OriginRegistry.start();
    evil = await EvilUpstream.start();
    const hash = bcrypt.hashSync("pw", 4);
    berth = await startMirror(
      [
        { host: origin.host, url: origin.url, prefix: "origin" },
        { host: evil.host, url: evil.url, prefix: "evil" },
      ],
      {
        auth: {
          mode: "token",
          users: tenants.map((username) => ({ username, passwordHash: hash, tenant: `team-${username}` })),
          policy: [{ roles: ["user"], repositories: ["**"], actions: ["pull", "push"] }],
        },
      },
    );
  });
  after(async () => {
    await berth?.stop();
    await origin?.close();
    await evil?.stop();
  });

  const pullAsEveryTenant = async (path: string) => {
    for (const username of tenants) {
      const answer = await new TokenClient(berth.url, { username, password: "pw" }).request(path, { headers: { accept: OCI_MANIFEST } });
      assert.equal(answer.status, 200, `${username}: ${answer.status} ${answer.body.subarray(0, 200).toString()}`);
    }
  };

  it(`serves a legitimate origin's manifest naming one layer ${REFERENCES} times, writing a handful of files`, async () => {
    const image = await pushImage(origin.url, "many/dups", "base");
    const layers = Array.from({ length: REFERENCES }, () => ({ digest: image.layer, size: image.layerBytes.length }));
    const manifest = Buffer.from(JSON.stringify(manifestNaming(layers, { digest: image.config, size: 80 })));
    const put = await fetch(`${origin.url}/v2/many/dups/manifests/v1`, { method: "PUT", body: new Uint8Array(manifest), headers: { "content-type": OCI_MANIFEST } });
    assert.equal(put.status, 201, await put.text());
    const before = await countFiles(berth.root);
    await pullAsEveryTenant("/v2/origin/many/dups/manifests/v1");
    assert.ok((await countFiles(berth.root)) - before < 20, `files written: ${(await countFiles(berth.root)) - before}`);
  });

  it(`serves an upstream's manifest naming ${REFERENCES} distinct digests, writing a handful of files`, async () => {
    const layers = Array.from({ length: REFERENCES }, () => ({ digest: sha256(randomBytes(32)), size: 1024 }));
    evil.manifest("many/distinct", "v1", manifestNaming(layers, { digest: sha256(randomBytes(8)), size: 80 }));
    const before = await countFiles(berth.root);
    await pullAsEveryTenant("/v2/evil/many/distinct/manifests/v1");
    assert.ok((await countFiles(berth.root)) - before < 20, `files written: ${(await countFiles(berth.root)) - before}`);
  });

  it(`refuses a push naming ${REFERENCES} distinct digests with 400 MANIFEST_INVALID, storing nothing`, async () => {
    const client = new TokenClient(berth.url, { username: "alice", password: "pw" });
    const layers = Array.from({ length: REFERENCES }, () => ({ digest: sha256(randomBytes(32)), size: 1024 }));
    const before = await countFiles(berth.root);
    const answer = await client.request("/v2/team-alice/huge/manifests/v1", {
      method: "PUT",
      headers: { "content-type": OCI_MANIFEST },
      body: Buffer.from(JSON.stringify(manifestNaming(layers, { digest: sha256(randomBytes(8)), size: 80 }))),
      actions: "pull,push",
    });
    assert.equal(answer.status, 400);
    assert.equal(answer.code, "MANIFEST_INVALID");
    assert.match(answer.body.toString(), /at most 1000/);
    assert.equal(await countFiles(berth.root), before);
  });

  it(`takes a push naming one pushed layer ${REFERENCES} times: references count once each`, async () => {
    const client = new TokenClient(berth.url, { username: "alice", password: "pw" });
    const token = await client.token(`${berth.url}/token`, "berth", ["repository:team-alice/dups:pull,push"]);
    const image = await pushImage(berth.url, "team-alice/dups", "base", `Bearer ${token}`);
    const layers = Array.from({ length: REFERENCES }, () => ({ digest: image.layer, size: image.layerBytes.length }));
    const answer = await client.request("/v2/team-alice/dups/manifests/v1", {
      method: "PUT",
      headers: { "content-type": OCI_MANIFEST },
      body: Buffer.from(JSON.stringify(manifestNaming(layers, { digest: image.config, size: 80 }))),
      actions: "pull,push",
    });
    assert.equal(answer.status, 201, answer.body.toString());
  });
});
