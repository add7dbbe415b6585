import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import jwt from "jsonwebtoken";
import { runCommand } from "../support/command.js";
import { makeTempDir } from "../support/temp-dir.js";
import { bcryptHash, decodeToken, getToken, jwkKey, startTokenBerth, type TokenBerth } from "./token-fixture.js";
import type { TokenResponse } from "../../server/auth/token-service.js";

const CI = { username: "ci", password: "ci-secret" };
const NODE = { username: "node-1", password: "node-secret" };

const AUTH = {
  users: [{ username: CI.username, passwordHash: bcryptHash(CI.password), tenant: "team-a" }],
  nodes: [{ username: NODE.username, passwordHash: bcryptHash(NODE.password) }],
  policy: [
    { subjects: ["ci"], repositories: ["team-a/**"], actions: ["pull", "push"] },
    { roles: ["node"], repositories: ["**"], actions: ["pull"] },
    { anonymous: true, repositories: ["public/*"], actions: ["pull"] },
    { subjects: ["ci"], catalog: true },
  ],
};

function form(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

describe("/token (Docker token auth spec)", () => {
  let berth: TokenBerth;
  before(async () => {
    berth = await startTokenBerth(AUTH);
  });
  after(() => berth.close());

  it("answers GET with Basic credentials with token, access_token, expires_in and issued_at", async () => {
    const res = await berth.request().get("/token?service=berth&scope=repository:team-a/app:pull").auth(CI.username, CI.password).expect(200);
    assert.match(res.headers["content-type"], /^application\/json/);
    assert.equal(res.headers["cache-control"], "no-store");
    const body = res.body as TokenResponse;
    assert.equal(body.token, body.access_token);
    assert.equal(body.expires_in, 300);
    assert.match(body.issued_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(body.scope, "repository:team-a/app:pull");
    assert.equal(body.refresh_token, undefined);
  });

  it("signs an ES256 JWT with kid, iss, sub, aud, exp, nbf, iat, jti and the access claim", async () => {
    const answer = await getToken(berth, ["repository:team-a/app:pull,push"], CI);
    const { header, payload } = decodeToken(answer.token);
    assert.equal(header.alg, "ES256");
    assert.equal(typeof header.kid, "string");
    assert.equal(payload.iss, "berth");
    assert.equal(payload.sub, "ci");
    assert.equal(payload.aud, "berth");
    assert.equal(payload.iat, Math.floor(berth.clock.ms / 1000));
    assert.equal(payload.nbf, payload.iat);
    assert.equal(payload.exp, (payload.iat as number) + 300);
    assert.equal(typeof payload.jti, "string");
    assert.equal(payload.tenant, "team-a");
    assert.deepEqual(payload.access, [{ type: "repository", name: "team-a/app", actions: ["pull", "push"] }]);
    assert.equal(new Date(answer.issued_at).getTime() / 1000, payload.iat);
  });

  it("grants the intersection of repeated scopes and policy, never failing for asking too much", async () => {
    const answer = await getToken(berth, ["repository:team-a/app:pull,push,delete", "repository:team-b/app:pull", "repository:public/base:pull", "registry:catalog:*"], CI);
    assert.deepEqual(decodeToken(answer.token).payload.access, [
      { type: "repository", name: "team-a/app", actions: ["pull", "push"] },
      { type: "repository", name: "public/base", actions: ["pull"] },
      { type: "registry", name: "catalog", actions: ["*"] },
    ]);
    assert.equal(answer.scope, "repository:team-a/app:pull,push repository:public/base:pull registry:catalog:*");
  });

  it("gives an anonymous GET a token for what anonymous policy allows, possibly nothing", async () => {
    const anonymous = await getToken(berth, ["repository:public/base:pull,push", "repository:team-a/app:pull"]);
    const { payload } = decodeToken(anonymous.token);
    assert.equal(payload.sub, "anonymous");
    assert.deepEqual(payload.access, [{ type: "repository", name: "public/base", actions: ["pull"] }]);
    const nothing = await getToken(berth, ["repository:team-a/app:pull"]);
    assert.deepEqual(decodeToken(nothing.token).payload.access, []);
  });

  it("refuses bad credentials with 401, a Basic challenge and the distribution error JSON", async () => {
    for (const [username, password] of [["ci", "wrong"], ["nobody", "ci-secret"], ["", ""]]) {
      const res = await berth.request().get("/token?service=berth&scope=repository:team-a/app:pull").auth(username, password).expect(401);
      assert.equal(res.headers["www-authenticate"], 'Basic realm="berth"');
      assert.equal(res.body.errors[0].code, "UNAUTHORIZED");
      assert.equal(res.body.token, undefined);
    }
    const bearer = await berth.request().get("/token?service=berth").set("Authorization", "Bearer abc").expect(401);
    assert.equal(bearer.body.errors[0].code, "UNAUTHORIZED");
  });

  it("refuses to issue tokens for another service", async () => {
    const res = await berth.request().get("/token?service=elsewhere").auth(CI.username, CI.password).expect(400);
    assert.equal(res.body.errors[0].code, "UNSUPPORTED_VALUE");
  });

  it("accepts the OAuth2 password grant with a space-separated scope and answers with the granted scope", async () => {
    const res = await berth
      .request()
      .post("/token")
      .type("form")
      .send(form({ grant_type: "password", username: NODE.username, password: NODE.password, service: "berth", client_id: "containerd-client", scope: "repository:team-a/app:pull,push repository:team-b/x:pull" }))
      .expect(200);
    const body = res.body as TokenResponse;
    assert.equal(body.access_token, body.token);
    assert.equal(body.scope, "repository:team-a/app:pull repository:team-b/x:pull");
    assert.equal(body.refresh_token, undefined, "no refresh token without access_type=offline");
    assert.equal(decodeToken(body.access_token).payload.sub, "node-1");
  });

  it("issues a refresh token for access_type=offline and exchanges it for access tokens with other scopes", async () => {
    const offline = await berth
      .request()
      .post("/token")
      .type("form")
      .send(form({ grant_type: "password", username: CI.username, password: CI.password, service: "berth", client_id: "test", access_type: "offline" }))
      .expect(200);
    const refreshToken = offline.body.refresh_token as string;
    assert.equal(typeof refreshToken, "string");
    assert.equal(offline.body.refresh_expires_in, 600);
    assert.equal(offline.body.scope, "");

    const refreshed = await berth
      .request()
      .post("/token")
      .type("form")
      .send(form({ grant_type: "refresh_token", refresh_token: refreshToken, service: "berth", client_id: "test", scope: "repository:team-a/app:push" }))
      .expect(200);
    assert.equal(refreshed.body.refresh_token, refreshToken, "a refresh grant answers with the same refresh token");
    const { payload } = decodeToken(refreshed.body.access_token);
    assert.equal(payload.sub, "ci");
    assert.equal(payload.tenant, "team-a");
    assert.deepEqual(payload.access, [{ type: "repository", name: "team-a/app", actions: ["push"] }]);
  });

  it("accepts a refresh token as the password of GET Basic and of the password grant (what runtimes do with plugin credentials)", async () => {
    const { refresh_token } = (
      await berth.request().get("/token?service=berth&offline_token=true").auth(NODE.username, NODE.password).expect(200)
    ).body as TokenResponse;
    assert.ok(refresh_token);
    const viaGet = await getToken(berth, ["repository:any/thing:pull"], { username: "berth-token", password: refresh_token });
    assert.equal(decodeToken(viaGet.token).payload.sub, "node-1");
    const viaPost = await berth
      .request()
      .post("/token")
      .type("form")
      .send(form({ grant_type: "password", username: "berth-token", password: refresh_token, service: "berth", client_id: "containerd-client", scope: "repository:any/thing:pull" }))
      .expect(200);
    assert.deepEqual(decodeToken(viaPost.body.access_token).payload.access, [{ type: "repository", name: "any/thing", actions: ["pull"] }]);
  });

  it("does not accept an access token where a refresh token or password is expected", async () => {
    const access = await getToken(berth, ["repository:team-a/app:pull"], CI);
    await berth.request().get("/token?service=berth").auth("ci", access.token).expect(401);
    const res = await berth
      .request()
      .post("/token")
      .type("form")
      .send(form({ grant_type: "refresh_token", refresh_token: access.token, service: "berth", client_id: "test" }))
      .expect(401);
    assert.equal(res.body.errors[0].code, "UNAUTHORIZED");
  });

  it("answers malformed OAuth2 requests with 400 and a specific error code", async () => {
    const post = (fields: Record<string, string>) => berth.request().post("/token").type("form").send(form(fields));
    const base = { service: "berth", client_id: "test" };
    assert.equal((await post({ ...base }).expect(400)).body.errors[0].code, "MISSING_REQUIRED_FIELD");
    assert.equal((await post({ grant_type: "password", username: "ci", password: "x", service: "berth" }).expect(400)).body.errors[0].code, "MISSING_REQUIRED_FIELD");
    assert.equal((await post({ ...base, grant_type: "password", username: "ci" }).expect(400)).body.errors[0].code, "MISSING_REQUIRED_FIELD");
    assert.equal((await post({ ...base, grant_type: "authorization_code" }).expect(400)).body.errors[0].code, "UNSUPPORTED_VALUE");
    assert.equal((await post({ ...base, grant_type: "password", username: "ci", password: "ci-secret", access_type: "forever" }).expect(400)).body.errors[0].code, "UNSUPPORTED_VALUE");
    const json = await berth.request().post("/token").send({ grant_type: "password" }).expect(400);
    assert.equal(json.body.errors[0].code, "UNSUPPORTED_VALUE");
    const unreadable = await berth.request().post("/token").set("Content-Type", "application/x-www-form-urlencoded; charset=koi8-r").send("grant_type=password").expect(400);
    assert.equal(unreadable.body.errors[0].code, "UNSUPPORTED_VALUE");
    const huge = await berth.request().post("/token").type("form").send(`scope=${"a".repeat(70_000)}`).expect(413);
    assert.equal(huge.body.errors[0].code, "UNSUPPORTED_VALUE");
    await post({ ...base, grant_type: "password", username: "ci", password: "wrong" }).expect(401);
  });

  it("publishes the verifying public keys at /token/jwks", async () => {
    const res = await berth.request().get("/token/jwks").expect(200);
    const answer = await getToken(berth, ["repository:team-a/app:pull"], CI);
    const { header } = decodeToken(answer.token);
    const jwk = (res.body.keys as Record<string, unknown>[]).find((k) => k.kid === header.kid);
    assert.ok(jwk, "the signing key is in the JWKS");
    assert.equal(jwk.alg, "ES256");
    assert.equal(jwk.use, "sig");
    assert.equal(jwk.d, undefined, "no private part");
    const claims = jwt.verify(answer.token, jwkKey(jwk), { algorithms: ["ES256"], audience: "berth", issuer: "berth", clockTimestamp: Math.floor(berth.clock.ms / 1000) });
    assert.equal((claims as jwt.JwtPayload).sub, "ci");
  });
});

describe("/token configuration", () => {
  it("accepts password hashes written by htpasswd -B", async (t) => {
    const { stdout } = await runCommand("htpasswd", ["-nbB", "alice", "from-htpasswd"]);
    const berth = await startTokenBerth({ users: [{ username: "alice", passwordHash: stdout.trim().split(":")[1] }], policy: [{ subjects: ["alice"], repositories: ["**"], actions: ["pull"] }] });
    t.after(() => berth.close());
    const answer = await getToken(berth, ["repository:a/b:pull"], { username: "alice", password: "from-htpasswd" });
    assert.deepEqual(decodeToken(answer.token).payload.access, [{ type: "repository", name: "a/b", actions: ["pull"] }]);
    await berth.request().get("/token?service=berth").auth("alice", "not-it").expect(401);
  });

  it("signs with RS256 when configured, and with a configured key file", async (t) => {
    const rsa = await startTokenBerth({ token: { algorithm: "RS256", lifetime: "2m", service: "registry.example", issuer: "berth.example" } });
    t.after(() => rsa.close());
    const res = await rsa.request().get("/token?service=registry.example").expect(200);
    const { header, payload } = decodeToken(res.body.token);
    assert.equal(header.alg, "RS256");
    assert.equal(res.body.expires_in, 120);
    assert.equal(payload.aud, "registry.example");
    assert.equal(payload.iss, "berth.example");

    const dir = await makeTempDir("key-file");
    t.after(() => dir.remove());
    const keyFile = join(dir.path, "signing.pem");
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    await writeFile(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }));
    const configured = await startTokenBerth({ token: { signingKeyFile: keyFile } });
    t.after(() => configured.close());
    const token = (await configured.request().get("/token?service=berth").expect(200)).body.token as string;
    assert.doesNotThrow(() => jwt.verify(token, publicKey, { algorithms: ["ES256"], clockTimestamp: Math.floor(configured.clock.ms / 1000) }));
  });
});
