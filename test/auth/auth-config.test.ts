import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseConfig } from "../../config/load.js";
import { OpenAccess } from "../../server/auth/access.js";
import { setUpAuth } from "../../server/auth/setup.js";
import { makeTempDir } from "../support/temp-dir.js";
import { bcryptHash } from "./token-fixture.js";

const HASH = bcryptHash("secret");

describe("auth configuration", () => {
  it("defaults to mode none, where every request is allowed and there is no token service", async () => {
    const config = parseConfig({}, "test");
    assert.equal(config.auth.mode, "none");
    assert.deepEqual(config.auth.token, {
      service: "berth",
      issuer: "berth",
      lifetime: 300_000,
      refreshLifetime: 600_000,
      algorithm: "ES256",
      keyRotation: 2_592_000_000,
      verificationKeyFiles: [],
    });
    const auth = await setUpAuth(config);
    assert.ok(auth.access instanceof OpenAccess);
    assert.equal(auth.tokenService, undefined);
    assert.equal(auth.access.allows({ subject: "anonymous" }, "any/thing", "delete"), true);
  });

  it("rejects unusable auth settings with a one-line reason naming the key", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ mode: "ldap" }, /^test: auth\.mode: /],
      [{ users: [{ username: "a", passwordHash: "plain-text" }] }, /^test: auth\.users\.0\.passwordHash: must be a bcrypt hash/],
      [{ users: [{ username: "anonymous", passwordHash: HASH }] }, /auth\.users\.0\.username: anonymous is reserved/],
      [{ users: [{ username: "a", passwordHash: HASH }], nodes: [{ username: "a", passwordHash: HASH }] }, /auth\.nodes\.0\.username: a is configured twice/],
      [{ users: [{ username: "a", passwordHash: HASH, tenant: "Team_A" }] }, /auth\.users\.0\.tenant: must be a DNS label/],
      [{ policy: [{ repositories: ["**"], actions: ["pull"] }] }, /auth\.policy\.0: a rule needs anonymous: true or at least one of subjects, tenants, roles/],
      [{ policy: [{ roles: ["admin"], repositories: ["**"], actions: ["pull"] }] }, /auth\.policy\.0\.roles\.0/],
      [{ policy: [{ anonymous: true, repositories: ["**"], actions: ["write"] }] }, /auth\.policy\.0\.actions\.0/],
      [{ users: [{ username: "a", passwordHash: HASH.replace(/^\$2(.)\$\d\d\$/, "$$2$1$$03$$") }] }, /auth\.users\.0\.passwordHash: must be a bcrypt hash, cost 04-31/],
      [{ passwordChecks: { threads: 0 } }, /auth\.passwordChecks\.threads/],
      [{ passwordAttempts: { perClient: 0 } }, /auth\.passwordAttempts\.perClient/],
      [{ passwordAttempts: { window: "500ms" } }, /auth\.passwordAttempts\.window: must be a whole number of seconds/],
      [{ passwordAttempts: { trustedProxies: ["10.0.0.0/8", "proxy.example"] } }, /auth\.passwordAttempts\.trustedProxies\.1: must be an IP address, a CIDR/],
      [{ token: { lifetime: "1500ms" } }, /auth\.token\.lifetime: must be a whole number of seconds/],
      [{ token: { algorithm: "HS256" } }, /auth\.token\.algorithm/],
      [{ serviceAccounts: { issuer: "https://k8s", jwksFile: "/a", jwksUrl: "http://127.0.0.1/jwks" } }, /auth\.serviceAccounts: give exactly one of jwksFile, jwksUrl/],
      [{ serviceAccounts: { issuer: "https://k8s" } }, /auth\.serviceAccounts: give exactly one of jwksFile, jwksUrl/],
    ];
    for (const [auth, reason] of cases) {
      assert.throws(() => parseConfig({ auth }, "test"), (err: unknown) => err instanceof ConfigError && reason.test(err.message), JSON.stringify(auth));
    }
  });

  it("refuses a service-account issuer equal to berth's own issuer, and an unreadable signing key file", async (t) => {
    const dir = await makeTempDir("auth-config");
    t.after(() => dir.remove());
    const sameIssuer = parseConfig({ storage: { root: dir.path }, auth: { mode: "token", serviceAccounts: { issuer: "berth", jwksFile: "/dev/null" } } }, "test");
    await assert.rejects(setUpAuth(sameIssuer), (err: unknown) => err instanceof ConfigError && /must differ/.test(err.message));
    const missingKey = parseConfig({ storage: { root: dir.path }, auth: { mode: "token", token: { signingKeyFile: `${dir.path}/absent.pem` } } }, "test");
    await assert.rejects(setUpAuth(missingKey), (err: unknown) => err instanceof ConfigError && /absent\.pem: cannot read key/.test(err.message));
  });
});
