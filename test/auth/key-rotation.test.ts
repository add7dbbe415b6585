import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { makeTempDir } from "../support/temp-dir.js";
import { bcryptHash, decodeToken, generatedKeys, getToken, startTokenBerth, type TokenBerth } from "./token-fixture.js";

const CI = { username: "ci", password: "ci-secret" };
const AUTH = {
  users: [{ username: CI.username, passwordHash: bcryptHash(CI.password) }],
  policy: [{ subjects: ["ci"], repositories: ["**"], actions: ["pull", "push"] }],
};

async function kids(berth: TokenBerth): Promise<string[]> {
  const res = await berth.request().get("/token/jwks").expect(200);
  return (res.body.keys as { kid: string }[]).map((k) => k.kid);
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe("signing key rotation", () => {
  it("replaces a generated key after keyRotation and keeps the old one verifying until its tokens expire", async (t) => {
    const berth = await startTokenBerth({ ...AUTH, token: { keyRotation: "1h", lifetime: "5m", refreshLifetime: "10m" } });
    t.after(() => berth.close());
    berth.clock.advance(3540);
    const old = await berth.request().get("/token?service=berth&offline_token=true").auth(CI.username, CI.password).expect(200);
    const oldKid = decodeToken(old.body.token).header.kid;
    assert.deepEqual(await kids(berth), [oldKid]);

    berth.clock.advance(60);
    const fresh = await getToken(berth, [], CI);
    const newKid = decodeToken(fresh.token).header.kid;
    assert.notEqual(newKid, oldKid, "a new key signs once the old one is an hour old");
    assert.deepEqual(await kids(berth), [oldKid, newKid]);
    assert.equal((await generatedKeys(berth.root)).length, 2);
    await berth.request().get("/v2/").set(bearer(old.body.token)).expect(200);
    await berth.request().get("/v2/").set(bearer(fresh.token)).expect(200);

    berth.clock.advance(500);
    const viaOldRefresh = await getToken(berth, [], { username: "berth-token", password: old.body.refresh_token });
    assert.equal(decodeToken(viaOldRefresh.token).header.kid, newKid, "tokens issued from an old refresh token are signed by the new key");

    berth.clock.advance(100);
    assert.deepEqual(await kids(berth), [newKid], "the old key retires when the longest token it could have signed has expired");
    await getToken(berth, [], CI);
    assert.equal((await generatedKeys(berth.root)).length, 1, "and its file is deleted");
  });

  it("keeps generated keys across a restart, so tokens issued before it stay valid", async (t) => {
    const first = await startTokenBerth(AUTH);
    const token = (await getToken(first, ["repository:a/b:pull"], CI)).token;
    const second = await first.reopen();
    t.after(() => second.close());
    await second.request().get("/v2/a/b/tags/list").set(bearer(token)).expect(404);
    assert.equal(decodeToken((await getToken(second, [], CI)).token).header.kid, decodeToken(token).header.kid);
  });

  it("generates a key of the new algorithm when auth.token.algorithm changes, still verifying the old one", async (t) => {
    const first = await startTokenBerth(AUTH);
    const es256 = (await getToken(first, [], CI)).token;
    const second = await first.reopen({ ...AUTH, token: { algorithm: "RS256" } });
    t.after(() => second.close());
    const rs256 = (await getToken(second, [], CI)).token;
    assert.equal(decodeToken(rs256).header.alg, "RS256");
    await second.request().get("/v2/").set(bearer(es256)).expect(200);
    await second.request().get("/v2/").set(bearer(rs256)).expect(200);
  });

  it("rotates configured key files: the previous key listed in verificationKeyFiles keeps its tokens valid", async (t) => {
    const dir = await makeTempDir("key-files");
    t.after(() => dir.remove());
    const write = async (name: string, type: "ec" | "rsa") => {
      const pair = type === "ec" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("rsa", { modulusLength: 2048 });
      const file = join(dir.path, name);
      await writeFile(file, pair.privateKey.export({ type: "pkcs8", format: "pem" }));
      await writeFile(`${file}.pub`, pair.publicKey.export({ type: "spki", format: "pem" }));
      return file;
    };
    const previous = await write("previous.pem", "ec");
    const next = await write("next.pem", "rsa");

    const first = await startTokenBerth({ ...AUTH, token: { signingKeyFile: previous } });
    const oldToken = (await getToken(first, [], CI)).token;
    const during = await first.reopen({ ...AUTH, token: { signingKeyFile: next, verificationKeyFiles: [`${previous}.pub`] } });
    const newToken = (await getToken(during, [], CI)).token;
    assert.equal(decodeToken(newToken).header.alg, "RS256");
    assert.deepEqual(await kids(during), [decodeToken(oldToken).header.kid, decodeToken(newToken).header.kid]);
    await during.request().get("/v2/").set(bearer(oldToken)).expect(200);
    await during.request().get("/v2/").set(bearer(newToken)).expect(200);

    const afterwards = await during.reopen({ ...AUTH, token: { signingKeyFile: next } });
    t.after(() => afterwards.close());
    const refused = await afterwards.request().get("/v2/").set(bearer(oldToken)).expect(401);
    assert.match(refused.headers["www-authenticate"], /error="invalid_token"/);
    await afterwards.request().get("/v2/").set(bearer(newToken)).expect(200);
  });
});
