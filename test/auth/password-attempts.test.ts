import assert from "node:assert/strict";
import { request, type IncomingHttpHeaders } from "node:http";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { bcryptHash, decodeToken, startTokenBerth, type TokenBerth } from "./token-fixture.js";

const CI = { username: "ci", password: "ci-secret" };
const NODE = { username: "node-1", password: "node-secret" };

const ACCOUNTS = {
  users: [{ username: CI.username, passwordHash: bcryptHash(CI.password), tenant: "team-a" }],
  nodes: [{ username: NODE.username, passwordHash: bcryptHash(NODE.password) }],
  policy: [{ roles: ["user", "node"], repositories: ["**"], actions: ["pull"] }],
};

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Record<string, any>;
}

interface Ask {
  basic?: { username: string; password: string };
  form?: Record<string, string>;
  headers?: Record<string, string>;
}

/** A client of its own: it connects from another loopback address (127.0.0.0/8 is all local). */
function clientAt(localAddress: string) {
  return (berth: TokenBerth, path: string, ask: Ask = {}) =>
    new Promise<Answer>((resolve, reject) => {
      const headers: Record<string, string> = { ...ask.headers };
      if (ask.basic) headers.authorization = `Basic ${Buffer.from(`${ask.basic.username}:${ask.basic.password}`).toString("base64")}`;
      if (ask.form) headers["content-type"] = "application/x-www-form-urlencoded";
      const req = request(`${berth.url}${path}`, { method: ask.form ? "POST" : "GET", headers, localAddress }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(ask.form ? new URLSearchParams(ask.form).toString() : undefined);
    });
}

const fromA = clientAt("127.0.0.2");
const fromB = clientAt("127.0.0.3");
const passwordGrant = (username: string, password: string, extra: Record<string, string> = {}) => ({
  form: { grant_type: "password", username, password, service: "berth", client_id: "containerd-client", ...extra },
});

function assertTooMany(res: Answer, windowSeconds: number): void {
  assert.equal(res.status, 429);
  const retryAfter = Number(res.headers["retry-after"]);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= windowSeconds, `Retry-After ${res.headers["retry-after"]}`);
  assert.equal(res.body.errors[0].code, "TOOMANYREQUESTS");
  assert.match(res.body.errors[0].message, /too many failed password attempts/);
  assert.equal(res.body.token, undefined);
}

describe("password attempt budgets at /token", () => {
  it("answers a client's attempt after its budget of failures with 429, Retry-After and the token error JSON, however it asks", async (t) => {
    const berth = await startTokenBerth({ ...ACCOUNTS, passwordAttempts: { perClient: 4, perAccount: 100 } });
    t.after(() => berth.close());
    // GET with Basic and the OAuth2 password grant share one budget; so do all the usernames a client tries.
    assert.equal((await fromA(berth, "/token?service=berth", { basic: { username: "ci", password: "guess-1" } })).status, 401);
    assert.equal((await fromA(berth, "/token", passwordGrant("ci", "guess-2"))).status, 401);
    assert.equal((await fromA(berth, "/token?service=berth", { basic: { username: "node-1", password: "guess-3" } })).status, 401);
    assert.equal((await fromA(berth, "/token?service=berth", { basic: { username: "nobody", password: "guess-4" } })).status, 401);
    assertTooMany(await fromA(berth, "/token?service=berth", { basic: { username: "ci", password: "guess-5" } }), 60);
    assertTooMany(await fromA(berth, "/token", passwordGrant("someone-else", "guess-6")), 60);
    assertTooMany(await fromA(berth, "/token?service=berth", { basic: CI }), 60);

    const other = await fromB(berth, "/token?service=berth&scope=repository:team-a/app:pull", { basic: CI });
    assert.equal(other.status, 200, "a legitimate user on another client still gets a token");
    assert.equal(decodeToken(other.body.token).payload.sub, "ci");
  });

  it("charges only failures, so a client that logs in often, or many times at once, is never refused for it", async (t) => {
    const berth = await startTokenBerth({ ...ACCOUNTS, passwordAttempts: { perClient: 2, perAccount: 100 } });
    t.after(() => berth.close());
    assert.equal((await fromA(berth, "/token?service=berth", { basic: { username: "ci", password: "typo" } })).status, 401);
    for (let i = 0; i < 5; i++) assert.equal((await fromA(berth, "/token", passwordGrant(CI.username, CI.password))).status, 200);
    const atOnce = await Promise.all(Array.from({ length: 8 }, () => fromA(berth, "/token?service=berth", { basic: CI })));
    assert.deepEqual(atOnce.map((res) => res.status), Array(8).fill(200));
    assert.equal((await fromA(berth, "/token?service=berth", { basic: { username: "ci", password: "typo" } })).status, 401);
    assertTooMany(await fromA(berth, "/token?service=berth", { basic: CI }), 60);
  });

  it("still takes refresh tokens from a client whose password budget is spent: they cost no bcrypt and cannot be guessed", async (t) => {
    const berth = await startTokenBerth({ ...ACCOUNTS, passwordAttempts: { perClient: 1, perAccount: 100 } });
    t.after(() => berth.close());
    const offline = await fromA(berth, "/token", passwordGrant(NODE.username, NODE.password, { access_type: "offline" }));
    assert.equal(offline.status, 200);
    assert.equal((await fromA(berth, "/token?service=berth", { basic: { username: "node-1", password: "wrong" } })).status, 401);
    assertTooMany(await fromA(berth, "/token?service=berth", { basic: NODE }), 60);
    const refreshToken = offline.body.refresh_token as string;
    const refreshed = await fromA(berth, "/token", { form: { grant_type: "refresh_token", refresh_token: refreshToken, service: "berth", client_id: "test" } });
    assert.equal(refreshed.status, 200);
    const asPassword = await fromA(berth, "/token?service=berth", { basic: { username: "berth-token", password: refreshToken } });
    assert.equal(asPassword.status, 200);
    const forged = await fromA(berth, "/token?service=berth", { basic: { username: "berth-token", password: `${refreshToken.slice(0, -4)}AAAA` } });
    assert.equal(forged.status, 401, "a forged refresh token is refused by its signature");
  });

  it("ignores X-Forwarded-For unless the connection comes from a trusted proxy, and then charges the address it names", async (t) => {
    const direct = await startTokenBerth({ ...ACCOUNTS, passwordAttempts: { perClient: 2, perAccount: 100 } });
    t.after(() => direct.close());
    for (const forwarded of ["198.51.100.1", "198.51.100.2"]) {
      const res = await fromA(direct, "/token?service=berth", { basic: { username: "ci", password: "guess" }, headers: { "x-forwarded-for": forwarded } });
      assert.equal(res.status, 401);
    }
    assertTooMany(await fromA(direct, "/token?service=berth", { basic: { username: "ci", password: "guess" }, headers: { "x-forwarded-for": "198.51.100.3" } }), 60);

    const proxied = await startTokenBerth({ ...ACCOUNTS, passwordAttempts: { perClient: 2, perAccount: 100, trustedProxies: ["127.0.0.0/8"] } });
    t.after(() => proxied.close());
    const through = (forwarded: string, password: string) =>
      fromA(proxied, "/token?service=berth", { basic: { username: "ci", password }, headers: { "x-forwarded-for": `203.0.113.9, ${forwarded}` } });
    assert.equal((await through("198.51.100.1", "guess")).status, 401);
    assert.equal((await through("198.51.100.1", "guess")).status, 401);
    assertTooMany(await through("198.51.100.1", "guess"), 60);
    assert.equal((await through("198.51.100.2", CI.password)).status, 200, "another client behind the same proxy is not charged");
    assert.equal((await through("2001:db8:1:2::1", "guess")).status, 401);
    assert.equal((await through("2001:db8:1:2::99", "guess")).status, 401);
    assertTooMany(await through("2001:db8:1:2:ffff::1", "guess"), 60);
    assert.equal((await through("2001:db8:1:3::1", "guess")).status, 401, "IPv6 clients are charged per /64");
  });

  it("limits failures for one account from many clients, but not for clients that logged in as it, and treats unknown names alike", async (t) => {
    const berth = await startTokenBerth({ ...ACCOUNTS, passwordAttempts: { perClient: 100, perAccount: 3, trustedProxies: ["loopback"] } });
    t.after(() => berth.close());
    const from = (address: string, basic: { username: string; password: string }) => fromA(berth, "/token?service=berth", { basic, headers: { "x-forwarded-for": address } });
    assert.equal((await from("198.51.100.200", CI)).status, 200, "ci's usual client logs in");
    for (const username of ["ci", "nobody"]) {
      for (let i = 1; i <= 3; i++) assert.equal((await from(`198.51.100.${i}`, { username, password: "guess" })).status, 401);
      assertTooMany(await from("198.51.100.4", { username, password: "guess" }), 60);
      assertTooMany(await from("198.51.100.5", { username, password: "guess" }), 60);
    }
    assertTooMany(await from("198.51.100.6", CI), 60);
    assert.equal((await from("198.51.100.200", CI)).status, 200, "the account's proven client is not locked out");
    assert.equal((await from("198.51.100.7", NODE)).status, 200, "other accounts are not affected");
  });

  it("lets a client try again once the Retry-After it was given has passed", async (t) => {
    const berth = await startTokenBerth({ ...ACCOUNTS, passwordAttempts: { perClient: 1, window: "1s" } });
    t.after(() => berth.close());
    assert.equal((await fromA(berth, "/token?service=berth", { basic: { username: "ci", password: "typo" } })).status, 401);
    const refused = await fromA(berth, "/token?service=berth", { basic: CI });
    assertTooMany(refused, 1);
    await sleep(Number(refused.headers["retry-after"]) * 1000 + 100);
    assert.equal((await fromA(berth, "/token?service=berth", { basic: CI })).status, 200);
  });
});
