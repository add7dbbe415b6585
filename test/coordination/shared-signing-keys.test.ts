import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { bcryptHash, decodeToken } from "../auth/token-fixture.js";
import { BerthProcess } from "../support/berth-process.js";
import { Replicas } from "../support/replicas.js";
import { s3StorageConfig, swiftS3 } from "../support/swift-s3.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

const CI = { username: "ci", password: "ci-secret" };
/** Keys rotate every few seconds here, so the test sees a rotation happen. */
const ROTATION_S = 4;

async function token(url: string): Promise<string> {
  const response = await fetch(`${url}/token?service=berth&scope=repository:team/app:pull`, { headers: { authorization: `Basic ${Buffer.from(`${CI.username}:${CI.password}`).toString("base64")}` } });
  assert.equal(response.status, 200, `${url}/token`);
  return ((await response.json()) as { token: string }).token;
}

/** The status of a pull with the token: 404 (no such manifest) means the token was accepted. */
async function pullWith(url: string, bearer: string): Promise<number> {
  const response = await fetch(`${url}/v2/team/app/manifests/v1`, { headers: { authorization: `Bearer ${bearer}` } });
  await response.arrayBuffer();
  return response.status;
}

async function jwksKids(url: string): Promise<string[]> {
  const response = await fetch(`${url}/token/jwks`);
  return ((await response.json()) as { keys: { kid: string }[] }).keys.map((key) => key.kid);
}

const kid = (jwt: string) => decodeToken(jwt).header.kid!;

describe("replicas share their token signing keys", () => {
  let replicas: Replicas;
  let work: TempDir;
  const auth = {
    mode: "token",
    users: [{ username: CI.username, passwordHash: bcryptHash(CI.password) }],
    policy: [{ subjects: ["ci"], repositories: ["**"], actions: ["pull", "push"] }],
    token: { keyRotation: `${ROTATION_S}s`, lifetime: "5m", refreshLifetime: "5m" },
  };

  before(async () => {
    work = await makeTempDir("signing-keys");
    replicas = await Replicas.start({ count: 3, config: { auth } });
  });
  after(async () => {
    await replicas?.close();
    await work?.remove();
  });

  it("accepts on every replica a token any replica issued", async () => {
    for (const issuer of replicas.urls) {
      const issued = await token(issuer);
      for (const url of replicas.urls) assert.equal(await pullWith(url, issued), 404, `a token from ${issuer} on ${url}`);
    }
  });

  it("signs on every replica with a key one replica rotated in, within seconds, and keeps the old key verifying", async () => {
    const before = await token(replicas.urls[0]);
    await delay(ROTATION_S * 1000 + 200);
    const rotated = await token(replicas.urls[0]);
    assert.notEqual(kid(rotated), kid(before), "the first replica rotated its key");
    for (const url of replicas.urls.slice(1)) {
      assert.equal(kid(await token(url)), kid(rotated), `${url} signs with the key rotated in on the first replica`);
      assert.ok((await jwksKids(url)).includes(kid(rotated)), `${url} publishes the new key`);
      assert.equal(await pullWith(url, before), 404, `${url} still accepts a token signed before the rotation`);
      assert.equal(await pullWith(url, rotated), 404, `${url} accepts one signed after`);
    }
  });

  it("refuses a token signed by a key no replica made", async () => {
    const issued = await token(replicas.urls[0]);
    const [, payload, signature] = issued.split(".");
    const forgedHeader = Buffer.from(JSON.stringify({ ...decodeToken(issued).header, kid: "A".repeat(43) })).toString("base64url");
    assert.equal(await pullWith(replicas.urls[1], [forgedHeader, payload, signature].join(".")), 401);
  });

  it("refuses to start a replica whose internal secret is not the others', saying so", async () => {
    const secretFile = join(work.path, "other-secret");
    await writeFile(secretFile, randomBytes(24).toString("hex"), { mode: 0o600 });
    await assert.rejects(
      BerthProcess.start({
        config: {
          auth,
          storage: { driver: "s3", s3: s3StorageConfig(await swiftS3(), replicas.bucket) },
          coordination: { redis: { url: replicas.redis.url }, replicaId: "stranger", internal: { listen: "127.0.0.1:0", secretFile } },
        },
      }),
      /does not decrypt: is coordination\.internal\.secretFile the same on every replica\?/,
    );
  });
});
