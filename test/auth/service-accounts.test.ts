import assert from "node:assert/strict";
import { generateKeyPairSync, randomUUID, type KeyObject } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import jwt from "jsonwebtoken";
import { makeTempDir } from "../support/temp-dir.js";
import { decodeToken, startTokenBerth, TestClock, type TokenBerth } from "./token-fixture.js";
import type { TokenResponse } from "../../server/auth/token-service.js";

const ISSUER = "https://kubernetes.default.svc.cluster.local";

/** A stand-in for the cluster's service-account issuer: its signing keys and JWKS. */
class ClusterIssuer {
  private readonly keys: { kid: string; privateKey: KeyObject; publicKey: KeyObject }[] = [];

  constructor() {
    this.rotate();
  }

  rotate(): void {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.keys.push({ kid: randomUUID(), privateKey, publicKey });
  }

  jwks(): string {
    return JSON.stringify({ keys: this.keys.map((k) => ({ ...k.publicKey.export({ format: "jwk" }), kid: k.kid, alg: "RS256", use: "sig" })) });
  }

  /** A projected service-account token, as the kubelet hands to credential providers. */
  token(clock: TestClock, namespace: string, name: string, overrides: Record<string, unknown> = {}): string {
    const now = Math.floor(clock.ms / 1000);
    const key = this.keys.at(-1)!;
    const claims: Record<string, unknown> = {
      iss: ISSUER,
      aud: ["berth"],
      sub: `system:serviceaccount:${namespace}:${name}`,
      iat: now,
      nbf: now,
      exp: now + 600,
      "kubernetes.io": { namespace, serviceaccount: { name, uid: randomUUID() }, pod: { name: "app-0", uid: randomUUID() } },
      ...overrides,
    };
    for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
    return jwt.sign(claims, key.privateKey, { algorithm: "RS256", keyid: key.kid });
  }
}

const POLICY = [{ roles: ["serviceaccount"], repositories: ["{tenant}/**"], actions: ["pull"] }];

async function exchange(berth: TokenBerth, saToken: string, scope: string): Promise<{ status: number; body: TokenResponse & { errors?: { code: string }[] } }> {
  const res = await berth
    .request()
    .post("/token")
    .type("form")
    .send(new URLSearchParams({ grant_type: "password", username: "berth-token", password: saToken, service: "berth", client_id: "berth-credential-provider", access_type: "offline", scope }).toString());
  return { status: res.status, body: res.body };
}

/** A token-mode berth trusting a fresh cluster issuer whose keys it reads from a JWKS file. */
async function startWithJwksFile(t: TestContext) {
  const issuer = new ClusterIssuer();
  const dir = await makeTempDir("jwks");
  t.after(() => dir.remove());
  const jwksFile = join(dir.path, "jwks.json");
  await writeFile(jwksFile, issuer.jwks());
  const berth = await startTokenBerth({ serviceAccounts: { issuer: ISSUER, audiences: ["berth"], jwksFile }, policy: POLICY });
  t.after(() => berth.close());
  return { issuer, berth };
}

describe("Kubernetes service-account tokens", () => {
  it("accepts a service-account token as the password and makes its namespace the tenant", async (t) => {
    const { issuer, berth } = await startWithJwksFile(t);

    const saToken = issuer.token(berth.clock, "team-a", "builder", { exp: Math.floor(berth.clock.ms / 1000) + 120 });
    const { status, body } = await exchange(berth, saToken, "repository:team-a/app:pull repository:team-b/app:pull");
    assert.equal(status, 200, JSON.stringify(body));
    const { payload } = decodeToken(body.access_token);
    assert.equal(payload.sub, "system:serviceaccount:team-a:builder");
    assert.equal(payload.tenant, "team-a");
    assert.deepEqual(payload.access, [{ type: "repository", name: "team-a/app", actions: ["pull"] }]);
    assert.equal(body.refresh_expires_in, 120, "the refresh token expires with the service-account token");

    const principal = await berth.auth.access.authorize(
      { headers: { authorization: `Bearer ${body.access_token}` } } as IncomingMessage,
      { repository: "team-a/app", actions: ["pull"] },
    );
    assert.deepEqual(principal, { subject: "system:serviceaccount:team-a:builder", tenant: "team-a", role: "serviceaccount" });

    const fromRefresh = await berth.request().get("/token?service=berth&scope=repository:team-a/app:pull").auth("berth-token", body.refresh_token!).expect(200);
    assert.equal(decodeToken(fromRefresh.body.token).payload.tenant, "team-a");
  });

  it("refuses service-account tokens with the wrong audience, signer, lifetime or identity", async (t) => {
    const { issuer, berth } = await startWithJwksFile(t);
    const now = Math.floor(berth.clock.ms / 1000);
    const impostor = new ClusterIssuer();
    const refused: [string, string][] = [
      ["another audience", issuer.token(berth.clock, "team-a", "builder", { aud: ["kubernetes"] })],
      ["a key the issuer does not publish", impostor.token(berth.clock, "team-a", "builder")],
      ["expired beyond the minute of leeway", issuer.token(berth.clock, "team-a", "builder", { iat: now - 3700, nbf: now - 3700, exp: now - 61 })],
      ["a subject that is not its namespace's", issuer.token(berth.clock, "team-a", "builder", { sub: "system:serviceaccount:team-b:builder" })],
      ["no kubernetes.io claims (a legacy token)", issuer.token(berth.clock, "team-a", "builder", { "kubernetes.io": undefined })],
      ["no exp", issuer.token(berth.clock, "team-a", "builder", { exp: undefined })],
    ];
    for (const [what, token] of refused) {
      const { status, body } = await exchange(berth, token, "repository:team-a/app:pull");
      assert.equal(status, 401, what);
      assert.equal(body.errors?.[0].code, "UNAUTHORIZED", what);
    }
  });

  it("fetches the JWKS from a URL, re-reads it when a token names a new key, and reports an unreachable issuer as 503", async (t) => {
    const issuer = new ClusterIssuer();
    let fetches = 0;
    let reachable = true;
    const server: Server = createServer((req, res) => {
      fetches++;
      if (!reachable || req.url !== "/openid/v1/jwks") return void res.writeHead(503).end();
      res.writeHead(200, { "Content-Type": "application/json" }).end(issuer.jwks());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/openid/v1/jwks`;
    const berth = await startTokenBerth({ serviceAccounts: { issuer: ISSUER, jwksUrl, jwksRefresh: "5m" }, policy: POLICY });
    t.after(() => berth.close());

    assert.equal((await exchange(berth, issuer.token(berth.clock, "team-a", "a"), "")).status, 200);
    assert.equal((await exchange(berth, issuer.token(berth.clock, "team-a", "b"), "")).status, 200);
    assert.equal(fetches, 1, "the JWKS is cached");

    issuer.rotate();
    berth.clock.advance(11);
    assert.equal((await exchange(berth, issuer.token(berth.clock, "team-b", "c"), "")).status, 200, "a new kid re-reads the JWKS");
    assert.equal(fetches, 2);

    reachable = false;
    berth.clock.advance(301);
    assert.equal((await exchange(berth, issuer.token(berth.clock, "team-b", "d"), "")).status, 200, "the last good JWKS stays in use");

    const fresh = await startTokenBerth({ serviceAccounts: { issuer: ISSUER, jwksUrl }, policy: POLICY });
    t.after(() => fresh.close());
    const { status, body } = await exchange(fresh, issuer.token(fresh.clock, "team-a", "e"), "");
    assert.equal(status, 503);
    assert.equal(body.errors?.[0].code, "UNAVAILABLE");
  });
});
