import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { bcryptHash, decodeToken, startTokenBerth, type TokenBerth } from "../auth/token-fixture.js";
import { cleanEnv, installPlugins, runPlugin } from "./plugin-process.js";

const NODE_PASSWORD = "node-secret";

describe("docker-credential-berth (docker-credential-helpers protocol)", () => {
  let work: TempDir;
  let bin: string;
  let berth: TokenBerth;
  let env: NodeJS.ProcessEnv;
  const helper = (action: string, stdin = "", environment = env) => runPlugin(bin, "docker-credential-berth", [action], environment, stdin);

  before(async () => {
    work = await makeTempDir("docker-helper");
    bin = await installPlugins(work.path);
    berth = await startTokenBerth({
      nodes: [{ username: "node-1", passwordHash: bcryptHash(NODE_PASSWORD) }],
      policy: [{ roles: ["node"], repositories: ["**"], actions: ["pull"] }],
    });
    env = cleanEnv({ BERTH_URL: berth.url, BERTH_USERNAME: "node-1", BERTH_PASSWORD: NODE_PASSWORD });
  });
  after(async () => {
    await berth.close();
    await work.remove();
  });

  it("answers get with ServerURL, Username and a fresh short-lived Secret berth accepts", async () => {
    for (const serverUrl of [berth.host, `http://${berth.host}`, `https://${berth.host}/v2/`]) {
      const run = await helper("get", serverUrl);
      assert.equal(run.code, 0, run.stderr);
      const answer = JSON.parse(run.stdout) as Record<string, string>;
      assert.deepEqual(Object.keys(answer).sort(), ["Secret", "ServerURL", "Username"]);
      assert.equal(answer.ServerURL, serverUrl);
      assert.equal(answer.Username, "berth-token");
      const token = await berth.request().get("/token?service=berth&scope=repository:a/b:pull").auth(answer.Username, answer.Secret).expect(200);
      assert.equal(decodeToken(token.body.token).payload.sub, "node-1");
      assert.equal(decodeToken(answer.Secret).payload.exp, Math.floor(berth.clock.ms / 1000) + 600);
    }
  });

  it("answers get for another registry with the protocol's not-found message, so clients go anonymous", async () => {
    const run = await helper("get", "https://index.docker.io/v1/");
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "credentials not found in native keychain\n");
    assert.match(run.stderr, /index\.docker\.io.*is not berth/);
  });

  it("answers get without a server URL with the protocol's message", async () => {
    const run = await helper("get", "\n");
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "no credentials server URL\n");
  });

  it("fails get with the reason when berth refuses the node credential", async () => {
    const run = await helper("get", berth.host, { ...env, BERTH_PASSWORD: "wrong" });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^docker-credential-berth: berth refused the credentials \(401/);
    assert.match(run.stdout, /^berth refused the credentials/, "stdout carries the reason, as clients show it");
  });

  it("accepts and ignores store and erase: credentials come from the node's configuration", async () => {
    for (const [action, input] of [["store", JSON.stringify({ ServerURL: berth.host, Username: "x", Secret: "y" })], ["erase", berth.host]]) {
      const run = await helper(action, input);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, "");
    }
    const after = JSON.parse((await helper("get", berth.host)).stdout) as Record<string, string>;
    assert.equal(after.Username, "berth-token", "store did not change what get answers");
  });

  it("lists berth's host with the token username, or nothing when berth is not configured", async () => {
    assert.deepEqual(JSON.parse((await helper("list")).stdout), { [berth.host]: "berth-token" });
    assert.deepEqual(JSON.parse((await helper("list", "", cleanEnv())).stdout), {});
    assert.deepEqual(JSON.parse((await helper("list", "", { ...env, BERTH_REGISTRY_HOSTS: "berth.local:5000, berth:5000" })).stdout), {
      "berth.local:5000": "berth-token",
      "berth:5000": "berth-token",
    });
  });

  it("prints its version and rejects unknown actions", async () => {
    assert.match((await helper("version")).stdout, /^docker-credential-berth \(berth\) \d+\.\d+\.\d+\n$/);
    const unknown = await helper("delete-everything");
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /usage: docker-credential-berth <get\|store\|erase\|list\|version>/);
  });
});
