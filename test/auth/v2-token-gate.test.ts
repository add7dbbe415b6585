import assert from "node:assert/strict";
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { after, before, describe, it } from "node:test";
import jwt from "jsonwebtoken";
import supertest from "supertest";
import type { HostedApp } from "../support/hosted-app.js";
import { blob, imageManifest, pushImage, uniqueConfig, type PushedImage } from "../http/oci-fixtures.js";
import { bcryptHash, decodeToken, generatedKeys, getToken, startTokenBerth, storageSnapshot, type TokenBerth } from "./token-fixture.js";

const CI = { username: "ci", password: "ci-secret" };
const NODE = { username: "node-1", password: "node-secret" };

const AUTH = {
  users: [{ username: CI.username, passwordHash: bcryptHash(CI.password), tenant: "team-a" }],
  nodes: [{ username: NODE.username, passwordHash: bcryptHash(NODE.password) }],
  policy: [
    { subjects: ["ci"], repositories: ["team-a/**"], actions: ["pull", "push", "delete"] },
    { roles: ["node"], repositories: ["team-a/**"], actions: ["pull"] },
    { subjects: ["ci"], catalog: true },
  ],
};

/** The pushImage fixture, speaking through an agent that sends one Authorization header. */
function authorized(berth: TokenBerth, authorization: string): HostedApp {
  return { request: () => supertest.agent(berth.url).set("Authorization", authorization) } as unknown as HostedApp;
}

function base64url(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

describe("token mode gates /v2/", () => {
  let berth: TokenBerth;
  let realm: string;
  let pushed: PushedImage;
  /** The signing key berth generated, to craft tokens a real issuer would never sign. */
  let signingPem: string;
  let kid: string;

  before(async () => {
    berth = await startTokenBerth(AUTH);
    realm = `${berth.url}/token`;
    const token = await getToken(berth, ["repository:team-a/app:pull,push"], CI);
    pushed = await pushImage(authorized(berth, `Bearer ${token.token}`), "team-a/app", "v1");
    [{ pem: signingPem }] = await generatedKeys(berth.root);
    kid = decodeToken(token.token).header.kid as string;
  });
  after(() => berth.close());

  const claims = (overrides: Record<string, unknown> = {}) => {
    const now = Math.floor(berth.clock.ms / 1000);
    const payload: Record<string, unknown> = {
      iss: "berth",
      sub: "ci",
      aud: "berth",
      exp: now + 300,
      nbf: now,
      iat: now,
      jti: "crafted",
      token_use: "access",
      role: "user",
      tenant: "team-a",
      access: [{ type: "repository", name: "team-a/app", actions: ["pull", "push", "delete"] }],
      ...overrides,
    };
    for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
    return payload;
  };
  const sign = (payload: Record<string, unknown>, header: { kid?: string } = { kid }) =>
    jwt.sign(payload, createPrivateKey(signingPem), { algorithm: "ES256", ...(header.kid !== undefined ? { keyid: header.kid } : {}) });

  it("challenges a request without credentials with the exact Bearer realm, service and scope", async () => {
    const cases: [supertest.Test, string][] = [
      [berth.request().get("/v2/"), `Bearer realm="${realm}",service="berth"`],
      [berth.request().get("/v2/team-a/app/manifests/v1"), `Bearer realm="${realm}",service="berth",scope="repository:team-a/app:pull"`],
      [berth.request().head(`/v2/team-a/app/blobs/${pushed.config.digest}`), `Bearer realm="${realm}",service="berth",scope="repository:team-a/app:pull"`],
      [berth.request().get("/v2/team-a/app/tags/list"), `Bearer realm="${realm}",service="berth",scope="repository:team-a/app:pull"`],
      [berth.request().post("/v2/team-a/app/blobs/uploads/"), `Bearer realm="${realm}",service="berth",scope="repository:team-a/app:pull,push"`],
      [berth.request().put("/v2/team-a/app/manifests/v2").set("Content-Type", pushed.manifest.mediaType).send(pushed.manifest.bytes.toString()), `Bearer realm="${realm}",service="berth",scope="repository:team-a/app:pull,push"`],
      [berth.request().delete("/v2/team-a/app/manifests/v1"), `Bearer realm="${realm}",service="berth",scope="repository:team-a/app:delete"`],
      [berth.request().get("/v2/_catalog"), `Bearer realm="${realm}",service="berth",scope="registry:catalog:*"`],
    ];
    for (const [request, challenge] of cases) {
      const res = await request;
      assert.equal(res.status, 401, challenge);
      assert.equal(res.headers["www-authenticate"], challenge);
      if (res.text) assert.equal(res.body.errors[0].code, "UNAUTHORIZED");
    }
  });

  it("names the configured public URL as the realm", async (t) => {
    const behindProxy = await startTokenBerth({ ...AUTH, token: { publicUrl: "https://berth.example:8443/" } });
    t.after(() => behindProxy.close());
    const res = await behindProxy.request().get("/v2/a/b/manifests/v1").expect(401);
    assert.equal(res.headers["www-authenticate"], 'Bearer realm="https://berth.example:8443/token",service="berth",scope="repository:a/b:pull"');
  });

  it("serves pushes and pulls with a Bearer token, and with the token as the password of Basic", async () => {
    const token = (await getToken(berth, ["repository:team-a/basic:pull,push"], CI)).token;
    const viaBasic = authorized(berth, `Basic ${Buffer.from(`ci:${token}`).toString("base64")}`);
    const image = await pushImage(viaBasic, "team-a/basic", "v1");
    const res = await viaBasic.request().get("/v2/team-a/basic/manifests/v1").set("Accept", image.manifest.mediaType).expect(200);
    assert.equal(res.headers["docker-content-digest"], image.manifest.digest);
    const bearer = (await getToken(berth, ["repository:team-a/basic:pull"], NODE)).token;
    await berth.request().get(`/v2/team-a/basic/blobs/${image.layers[0].digest}`).set("Authorization", `Bearer ${bearer}`).expect(200);
    await berth.request().get("/v2/").set("Authorization", `Bearer ${bearer}`).expect(200);
  });

  it("lets a token with registry:catalog:* list the catalog", async () => {
    const token = (await getToken(berth, ["registry:catalog:*"], CI)).token;
    const res = await berth.request().get("/v2/_catalog").set("Authorization", `Bearer ${token}`).expect(200);
    assert.ok(res.body.repositories.includes("team-a/app"));
    const nodeToken = (await getToken(berth, ["registry:catalog:*"], NODE)).token;
    await berth.request().get("/v2/_catalog").set("Authorization", `Bearer ${nodeToken}`).expect(403);
  });

  it("answers a token lacking the action with 401 insufficient_scope when policy would grant it, so clients fetch a new token", async () => {
    const pullOnly = (await getToken(berth, ["repository:team-a/app:pull"], CI)).token;
    const res = await berth.request().post("/v2/team-a/app/blobs/uploads/").set("Authorization", `Bearer ${pullOnly}`).expect(401);
    assert.equal(res.headers["www-authenticate"], `Bearer realm="${realm}",service="berth",scope="repository:team-a/app:pull,push",error="insufficient_scope"`);
    assert.equal(res.body.errors[0].code, "UNAUTHORIZED");
    const otherRepository = await berth.request().get("/v2/team-a/other/tags/list").set("Authorization", `Bearer ${pullOnly}`).expect(401);
    assert.match(otherRepository.headers["www-authenticate"], /error="insufficient_scope"/);
  });

  it("answers 403 DENIED when the principal's policy does not allow the action at all", async () => {
    const nodeToken = (await getToken(berth, ["repository:team-a/app:pull,push"], NODE)).token;
    assert.deepEqual(decodeToken(nodeToken).payload.access, [{ type: "repository", name: "team-a/app", actions: ["pull"] }]);
    const res = await berth.request().post("/v2/team-a/app/blobs/uploads/").set("Authorization", `Bearer ${nodeToken}`).expect(403);
    assert.equal(res.body.errors[0].code, "DENIED");
    assert.equal(res.headers["www-authenticate"], undefined);
  });

  it("answers an anonymous token lacking access with 401, never 403", async () => {
    const anonymous = (await getToken(berth, ["repository:team-a/app:pull"])).token;
    const res = await berth.request().get("/v2/team-a/app/manifests/v1").set("Authorization", `Bearer ${anonymous}`).expect(401);
    assert.match(res.headers["www-authenticate"], /scope="repository:team-a\/app:pull",error="insufficient_scope"$/);
  });

  it("returns the token's principal, with tenant, from authorize() and exposes policy.allows", async () => {
    const token = (await getToken(berth, ["repository:team-a/app:pull"], CI)).token;
    const request = { headers: { authorization: `Bearer ${token}`, host: berth.host } } as IncomingMessage;
    const principal = await berth.auth.access.authorize(request, { repository: "team-a/app", actions: ["pull"] });
    assert.deepEqual(principal, { subject: "ci", tenant: "team-a", role: "user" });
    assert.equal(berth.auth.access.allows(principal, "team-a/app", "push"), true);
    assert.equal(berth.auth.access.allows(principal, "team-b/app", "pull"), false);
    assert.equal(berth.auth.access.allows({ subject: "node-1", role: "node" }, "team-a/app", "push"), false);
  });

  describe("refuses every token it should not trust, and writes nothing for it", () => {
    const refusals: [string, () => string][] = [
      ["a bad signature", () => jwt.sign(claims(), generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey, { algorithm: "ES256", keyid: kid })],
      ["alg none", () => `${base64url({ alg: "none", typ: "JWT", kid })}.${base64url(claims())}.`],
      [
        "HS256 keyed with berth's public key",
        () => {
          const publicPem = createPublicKey(createPrivateKey(signingPem)).export({ type: "spki", format: "pem" });
          const input = `${base64url({ alg: "HS256", typ: "JWT", kid })}.${base64url(claims())}`;
          return `${input}.${createHmac("sha256", publicPem).update(input).digest("base64url")}`;
        },
      ],
      ["an expired token", () => sign(claims({ exp: Math.floor(berth.clock.ms / 1000) - 1 }))],
      ["a not-yet-valid token", () => sign(claims({ nbf: Math.floor(berth.clock.ms / 1000) + 60 }))],
      ["a wrong audience", () => sign(claims({ aud: "another-registry" }))],
      ["a wrong issuer", () => sign(claims({ iss: "someone-else" }))],
      ["an unknown kid", () => sign(claims(), { kid: "not-a-berth-key" })],
      ["no kid", () => sign(claims(), {})],
      [
        "tampered claims",
        () => {
          const [header, , signature] = sign(claims({ access: [{ type: "repository", name: "team-a/app", actions: ["pull"] }] })).split(".");
          return `${header}.${base64url(claims())}.${signature}`;
        },
      ],
      ["a refresh token", () => sign(claims({ token_use: "refresh", access: undefined }))],
      ["a token without token_use", () => sign(claims({ token_use: undefined }))],
      ["a token without exp", () => sign(claims({ exp: undefined }))],
      ["garbage", () => "not.a.jwt"],
    ];

    for (const [what, craft] of refusals) {
      it(`refuses ${what} with 401 invalid_token`, async () => {
        const token = craft();
        const before = await storageSnapshot(berth.root);
        const bearer = { Authorization: `Bearer ${token}` };
        const attempts = [
          berth.request().get("/v2/team-a/app/manifests/v1").set(bearer),
          berth.request().get(`/v2/team-a/app/blobs/${pushed.layers[0].digest}`).set(bearer),
          berth.request().delete("/v2/team-a/app/manifests/v1").set(bearer),
          berth.request().post(`/v2/team-a/app/blobs/uploads/?digest=${blob("planted").digest}`).set(bearer).set("Content-Type", "application/octet-stream").send(Buffer.from("planted")),
        ];
        for (const res of await Promise.all(attempts)) {
          assert.equal(res.status, 401, res.text);
          assert.match(res.headers["www-authenticate"], /^Bearer realm=".*",service="berth",scope="repository:team-a\/app:[a-z,]+",error="invalid_token"$/);
          assert.equal(res.body.errors[0].code, "UNAUTHORIZED");
        }
        const asBasic = await berth
          .request()
          .post(`/v2/team-a/app/blobs/uploads/?digest=${blob("planted").digest}`)
          .set("Authorization", `Basic ${Buffer.from(`ci:${token}`).toString("base64")}`)
          .set("Content-Type", "application/octet-stream")
          .send(Buffer.from("planted"));
        assert.equal(asBasic.status, 401);
        assert.match(asBasic.headers["www-authenticate"], /^Bearer realm=".*",service="berth",scope="repository:team-a\/app:pull,push"/);
        assert.deepEqual(await storageSnapshot(berth.root), before);
      });
    }
  });

  it("stops accepting a token once it expires, and a refresh token once it expires", async (t) => {
    const clocked = await startTokenBerth({ ...AUTH, token: { lifetime: "60s", refreshLifetime: "90s" } });
    t.after(() => clocked.close());
    const offline = await clocked.request().get("/token?service=berth&offline_token=true&scope=repository:team-a/app:pull").auth(CI.username, CI.password).expect(200);
    const bearer = { Authorization: `Bearer ${offline.body.token}` };
    await clocked.request().get("/v2/").set(bearer).expect(200);
    clocked.clock.advance(59);
    await clocked.request().get("/v2/").set(bearer).expect(200);
    clocked.clock.advance(1);
    const expired = await clocked.request().get("/v2/").set(bearer).expect(401);
    assert.equal(expired.headers["www-authenticate"], `Bearer realm="${clocked.url}/token",service="berth",error="invalid_token"`);
    await clocked.request().get("/token?service=berth").auth("berth-token", offline.body.refresh_token).expect(200);
    clocked.clock.advance(30);
    await clocked.request().get("/token?service=berth").auth("berth-token", offline.body.refresh_token).expect(401);
  });

  it("lets no request without a valid token read or write anything", async () => {
    const before = await storageSnapshot(berth.root);
    const config = uniqueConfig();
    const layer = blob("would-be layer");
    const image = imageManifest(config, [layer]);
    const anonymous = (await getToken(berth, ["repository:team-a/app:pull,push,delete"])).token;
    const nodeToken = (await getToken(berth, ["repository:team-a/app:pull"], NODE)).token;
    for (const authorization of [undefined, `Bearer ${anonymous}`, `Bearer ${nodeToken}`, "Bearer junk", `Basic ${Buffer.from("ci:ci-secret").toString("base64")}`]) {
      const as = (test: supertest.Test) => (authorization ? test.set("Authorization", authorization) : test);
      const writes = [
        as(berth.request().post(`/v2/team-a/app/blobs/uploads/?digest=${layer.digest}`)).set("Content-Type", "application/octet-stream").send(layer.bytes),
        as(berth.request().post("/v2/team-a/app/blobs/uploads/")),
        as(berth.request().post(`/v2/team-a/app/blobs/uploads/?mount=${pushed.layers[0].digest}&from=team-a/app`)),
        as(berth.request().put("/v2/team-a/app/manifests/v9")).set("Content-Type", image.mediaType).send(image.bytes.toString()),
        as(berth.request().delete("/v2/team-a/app/manifests/v1")),
        as(berth.request().delete(`/v2/team-a/app/blobs/${pushed.layers[0].digest}`)),
        as(berth.request().put("/v2/team-b/new/manifests/v1")).set("Content-Type", image.mediaType).send(image.bytes.toString()),
      ];
      for (const [index, res] of (await Promise.all(writes)).entries()) assert.ok(res.status === 401 || res.status === 403, `${authorization} write #${index}: ${res.status} ${res.text}`);
      if (authorization !== `Bearer ${nodeToken}`) {
        const reads = [
          as(berth.request().get("/v2/team-a/app/manifests/v1")),
          as(berth.request().get(`/v2/team-a/app/blobs/${pushed.layers[0].digest}`)),
          as(berth.request().get("/v2/team-a/app/tags/list")),
          as(berth.request().get("/v2/_catalog")),
        ];
        for (const [index, res] of (await Promise.all(reads)).entries()) {
          assert.equal(res.status, 401, `${authorization} read #${index}`);
          assert.ok(!res.text.includes(pushed.layers[0].bytes.toString()) && !res.text.includes("v1\""), "no content in a refusal");
        }
      }
    }
    assert.deepEqual(await storageSnapshot(berth.root), before);
  });
});
