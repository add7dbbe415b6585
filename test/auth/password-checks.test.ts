import assert from "node:assert/strict";
import { describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { Accounts, bcryptCost, type PasswordHasher } from "../../server/auth/accounts.js";
import { BcryptPool, PasswordChecksBusy } from "../../server/auth/bcrypt-pool.js";
import { runCommand } from "../support/command.js";
import { startTokenBerth } from "./token-fixture.js";

/** bcryptjs on the test's thread, remembering every hash a password was compared with. */
class RecordingHasher implements PasswordHasher {
  readonly compared: string[] = [];
  async compare(password: string, hash: string): Promise<boolean> {
    this.compared.push(hash);
    return bcrypt.compare(password, hash);
  }
  hash(password: string, cost: number): Promise<string> {
    return bcrypt.hash(password, cost);
  }
}

const account = (username: string, cost: number) => ({ username, passwordHash: bcrypt.hashSync("secret", cost) });

describe("password checks", () => {
  it("compares an unknown user's password with a hash of the accounts' own bcrypt cost", async () => {
    const { stdout } = await runCommand("htpasswd", ["-nbB", "alice", "secret"]);
    const htpasswdHash = stdout.trim().split(":")[1];
    const hasher = new RecordingHasher();
    const accounts = await Accounts.open([{ username: "alice", passwordHash: htpasswdHash }], [account("node-1", bcryptCost(htpasswdHash))], hasher);
    assert.equal(await accounts.authenticate("nobody", "secret"), undefined);
    assert.equal(await accounts.authenticate("alice", "wrong"), undefined);
    assert.equal((await accounts.authenticate("alice", "secret"))?.principal.subject, "alice");
    const [unknown, wrong, right] = hasher.compared;
    assert.equal(bcryptCost(unknown), bcryptCost(htpasswdHash), `an unknown user costs what htpasswd -B's cost ${bcryptCost(htpasswdHash)} does`);
    assert.notEqual(unknown, htpasswdHash);
    assert.equal(wrong, htpasswdHash);
    assert.equal(right, htpasswdHash);
  });

  it("with mixed costs, gives each unknown name the cost of an account, always the same one, as often as the accounts have it", async () => {
    const hasher = new RecordingHasher();
    const accounts = await Accounts.open([account("a", 4), account("b", 4), account("c", 4)], [account("d", 6)], hasher);
    const costOf = async (username: string) => {
      await accounts.authenticate(username, "guess");
      return bcryptCost(hasher.compared.at(-1)!);
    };
    const costs: number[] = [];
    for (let i = 0; i < 200; i++) costs.push(await costOf(`user-${i}`));
    assert.deepEqual([...new Set(costs)].sort(), [4, 6], "only the accounts' costs");
    const share = costs.filter((cost) => cost === 6).length / costs.length;
    assert.ok(share > 0.1 && share < 0.45, `cost 6 drawn for ${share} of the names, one account in four has it`);
    for (let i = 0; i < 20; i++) assert.equal(await costOf(`user-${i}`), costs[i], "the same name always costs the same");
  });

  it("runs bcrypt on at most `threads` worker threads, and refuses checks beyond its queue at once", async (t) => {
    const pool = new BcryptPool({ threads: 2, queue: 3 });
    t.after(() => pool.close());
    const slowHash = await pool.hash("secret", 11);
    assert.equal(bcryptCost(slowHash), 11);
    const order: string[] = [];
    let peak = 0;
    const settled = (outcome: string) => {
      peak = Math.max(peak, pool.running);
      order.push(outcome);
    };
    const checks = Array.from({ length: 20 }, () => {
      const check = pool.compare("wrong", slowHash).then(
        (matches) => settled(`checked:${matches}`),
        (err: unknown) => settled(err instanceof PasswordChecksBusy ? "busy" : `failed:${(err as Error).message}`),
      );
      peak = Math.max(peak, pool.running);
      return check;
    });
    await Promise.all(checks);
    assert.equal(peak, 2, "never more than 2 bcrypt jobs at once");
    assert.deepEqual(order, [...Array(15).fill("busy"), ...Array(5).fill("checked:false")], "15 refused before the first of the 5 accepted finished");
    assert.equal(await pool.compare("secret", slowHash), true, "takes work again once the queue drains");
  });

  it("answers a password login 503 UNAVAILABLE with Retry-After when every bcrypt thread is busy and the queue is full", async (t) => {
    const berth = await startTokenBerth({
      users: [{ username: "ci", passwordHash: bcrypt.hashSync("ci-secret", 12) }],
      passwordChecks: { threads: 1, queue: 1 },
      passwordAttempts: { perClient: 100 },
    });
    t.after(() => berth.close());
    const attempts = await Promise.all(Array.from({ length: 6 }, () => berth.request().get("/token?service=berth").auth("ci", "wrong")));
    const statuses = attempts.map((res) => res.status).sort();
    assert.deepEqual(statuses, [401, 401, 503, 503, 503, 503], "one check running, one waiting, the rest refused");
    for (const res of attempts.filter((r) => r.status === 503)) {
      assert.equal(res.headers["retry-after"], "1");
      assert.equal(res.body.errors[0].code, "UNAVAILABLE");
    }
    await berth.request().get("/token?service=berth").auth("ci", "ci-secret").expect(200);
  });
});
