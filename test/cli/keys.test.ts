import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { stringify as toYaml } from "yaml";
import { loadConfigFile } from "../../config/load.js";
import { createLogger } from "../../server/log.js";
import { startBerth } from "../../server/server.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { lines, runBerth } from "./cli-fixture.js";

const AUTH = {
  mode: "token",
  users: [{ username: "ci", passwordHash: bcrypt.hashSync("ci-secret", 4) }],
  policy: [{ subjects: ["ci"], repositories: ["**"], actions: ["pull"] }],
};

/** Starts berth from a config file, asks for its JWKS kids and a fresh token's kid, and stops it. */
async function signingState(configFile: string): Promise<{ jwks: string[]; signer: string }> {
  const berth = await startBerth({ ...(await loadConfigFile(configFile)), listen: "127.0.0.1:0" }, createLogger("silent"));
  try {
    const jwks = (await (await fetch(`${berth.url}/token/jwks`)).json()) as { keys: { kid: string }[] };
    const auth = `Basic ${Buffer.from("ci:ci-secret").toString("base64")}`;
    const { token } = (await (await fetch(`${berth.url}/token?service=berth`, { headers: { authorization: auth } })).json()) as { token: string };
    const header = JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString("utf8")) as { kid: string };
    return { jwks: jwks.keys.map((k) => k.kid), signer: header.kid };
  } finally {
    await berth.close();
  }
}

describe("berth keys rotate", () => {
  let work: TempDir;
  before(async () => {
    work = await makeTempDir("cli-keys");
  });
  after(() => work?.remove());

  const configFile = async (name: string, config: Record<string, unknown>) => {
    const file = join(work.path, `${name}.yaml`);
    await writeFile(file, toYaml({ storage: { root: join(work.path, name) }, ...config }));
    return file;
  };

  it("makes berth sign with a new key from its next start, while the old key keeps verifying", async () => {
    const config = await configFile("rotating", { auth: AUTH });
    const before = await signingState(config);
    assert.equal(before.jwks.length, 1);

    const result = await runBerth(["keys", "rotate", "--config", config]);
    assert.equal(result.code, 0, result.stderr);
    const rotated = /^rotated: berth signs with (\S+) \(ES256\) from its next start; (\S+) verifies its tokens until they expire\n$/.exec(result.stdout);
    assert.ok(rotated, result.stdout);
    assert.equal(rotated[2], before.signer);
    assert.equal((await readdir(join(work.path, "rotating", "auth", "keys"))).length, 2);

    const afterRotation = await signingState(config);
    assert.equal(afterRotation.signer, rotated[1]);
    assert.deepEqual(afterRotation.jwks.sort(), [before.signer, rotated[1]].sort());
  });

  it("works on --storage alone, with the default algorithm", async () => {
    const config = await configFile("bare", { auth: AUTH });
    await signingState(config);
    const result = await runBerth(["keys", "rotate", "--storage", join(work.path, "bare")]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\(ES256\)/);
  });

  it("refuses to rotate a key berth does not own, or keys of a berth that signs no tokens", async () => {
    const keyFile = join(work.path, "signing.pem");
    await writeFile(keyFile, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }));
    const fixed = await configFile("fixed", { auth: { ...AUTH, token: { signingKeyFile: keyFile } } });
    await signingState(fixed);
    const refused = await runBerth(["keys", "rotate", "--config", fixed]);
    assert.equal(refused.code, 1);
    assert.deepEqual(lines(refused.stderr), [`berth keys: the signing key is auth.token.signingKeyFile (${keyFile}): rotate by replacing that file`]);

    const open = await configFile("open", {});
    await mkdir(join(work.path, "open"));
    const none = await runBerth(["keys", "rotate", "--config", open]);
    assert.equal(none.code, 1);
    assert.deepEqual(lines(none.stderr), [`berth keys: ${open} has auth.mode none: berth signs no tokens`]);
  });

  it("exits 2 without an action or a storage", async () => {
    const noAction = await runBerth(["keys"]);
    assert.equal(noAction.code, 2);
    assert.deepEqual(lines(noAction.stderr), ["berth keys: keys takes one action, rotate (berth keys --help)"]);
    const noStorage = await runBerth(["keys", "rotate"]);
    assert.equal(noStorage.code, 2);
    assert.deepEqual(lines(noStorage.stderr), ["berth keys: keys rotate needs --storage DIR or --config FILE (a stopped berth's storage) (berth keys --help)"]);
    const wrong = await runBerth(["keys", "delete", "--storage", work.path]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /keys takes one action, rotate, not "delete"/);
  });
});
