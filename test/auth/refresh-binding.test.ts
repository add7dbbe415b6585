import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bcryptHash, decodeToken, getToken, startTokenBerth, type TokenBerth } from "./token-fixture.js";
import type { TokenResponse } from "../../server/auth/token-service.js";

const PASSWORD = "ci-secret";
const HASH = bcryptHash(PASSWORD);
const POLICY = [{ roles: ["user", "node"], repositories: ["**"], actions: ["pull"] }];
const withCi = (account: { passwordHash?: string; tenant?: string; role?: "user" | "node" }) => {
  const entry = { username: "ci", passwordHash: account.passwordHash ?? HASH, ...(account.tenant ? { tenant: account.tenant } : {}) };
  return account.role === "node" ? { nodes: [entry], policy: POLICY } : { users: [entry], policy: POLICY };
};

async function refreshTokenOf(berth: TokenBerth): Promise<string> {
  const res = await berth.request().get("/token?service=berth&offline_token=true").auth("ci", PASSWORD).expect(200);
  return (res.body as TokenResponse).refresh_token!;
}

/** The refresh token in both places a client may present it: the refresh grant, and the password of GET Basic. */
async function useRefreshToken(berth: TokenBerth, refreshToken: string): Promise<{ grant: { status: number; body: any }; basic: { status: number; body: any } }> {
  const grant = await berth
    .request()
    .post("/token")
    .type("form")
    .send(new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken, service: "berth", client_id: "test", scope: "repository:a/b:pull" }).toString());
  const basic = await berth.request().get("/token?service=berth&scope=repository:a/b:pull").auth("berth-token", refreshToken);
  return { grant, basic };
}

describe("refresh tokens bound to their account's credentials", () => {
  for (const [change, next] of [
    ["password", withCi({ passwordHash: bcryptHash("rotated"), tenant: "team-a" })],
    ["tenant", withCi({ tenant: "team-b" })],
    ["role (user to node)", withCi({ tenant: "team-a", role: "node" })],
    ["tenant (now none)", withCi({})],
  ] as const) {
    it(`refuses a refresh token once its account's ${change} changed, after a restart`, async (t) => {
      const before = await startTokenBerth(withCi({ tenant: "team-a" }));
      const refreshToken = await refreshTokenOf(before);
      const after = await before.reopen(next);
      t.after(() => after.close());
      const { grant, basic } = await useRefreshToken(after, refreshToken);
      for (const res of [grant, basic]) {
        assert.equal(res.status, 401);
        assert.equal(res.body.errors[0].code, "UNAUTHORIZED");
        assert.match(res.body.errors[0].message, /password, tenant or role changed/);
      }
    });
  }

  it("keeps a refresh token across a restart that changes nothing, minting access tokens with the account's tenant", async (t) => {
    const before = await startTokenBerth(withCi({ tenant: "team-a" }));
    const refreshToken = await refreshTokenOf(before);
    const after = await before.reopen();
    t.after(() => after.close());
    const { grant, basic } = await useRefreshToken(after, refreshToken);
    for (const res of [grant, basic]) {
      assert.equal(res.status, 200);
      const { payload } = decodeToken(res.body.token);
      assert.equal(payload.sub, "ci");
      assert.equal(payload.tenant, "team-a");
      assert.equal(payload.role, "user");
    }
  });

  it("refuses a refresh token for an account that was removed", async (t) => {
    const before = await startTokenBerth(withCi({ tenant: "team-a" }));
    const refreshToken = await refreshTokenOf(before);
    const after = await before.reopen({ users: [{ username: "someone-else", passwordHash: HASH }], policy: POLICY });
    t.after(() => after.close());
    const { grant } = await useRefreshToken(after, refreshToken);
    assert.equal(grant.status, 401);
    assert.match(grant.body.errors[0].message, /no longer exists/);
  });

  it("carries a fingerprint of the account's state in the refresh token, never its password hash", async (t) => {
    const berth = await startTokenBerth(withCi({ tenant: "team-a" }));
    t.after(() => berth.close());
    const refreshToken = await refreshTokenOf(berth);
    const { payload } = decodeToken(refreshToken);
    assert.match(payload.account_state as string, /^[A-Za-z0-9_-]{22}$/);
    const claims = JSON.stringify(payload);
    for (const part of [HASH, HASH.slice(7, 29), HASH.slice(29)]) assert.ok(!claims.includes(part), "no part of the bcrypt hash");
    assert.equal(decodeToken((await getToken(berth, [], { username: "ci", password: PASSWORD })).token).payload.account_state, undefined, "access tokens do not carry it");
  });
});
