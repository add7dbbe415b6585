import assert from "node:assert/strict";
import { inspect } from "node:util";
import { describe, test } from "node:test";
import { Credential, distinctCredentials } from "../../../server/upstream/credentials/credential.js";

const SECRETS = ["hunter2-password", "identity-token-xyz", "registry-token-abc"];

function full(): Credential {
  return new Credential({ username: "alice", password: SECRETS[0], identityToken: SECRETS[1], registryToken: SECRETS[2] }, "config.json auths[\"*.example.io\"]");
}

function assertNoSecret(text: string): void {
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `leaked ${secret} in ${text}`);
}

describe("credential redaction", () => {
  test("secrets are readable as properties", () => {
    const credential = full();
    assert.equal(credential.username, "alice");
    assert.equal(credential.password, SECRETS[0]);
    assert.equal(credential.identityToken, SECRETS[1]);
    assert.equal(credential.registryToken, SECRETS[2]);
  });

  test("JSON.stringify shows source, username and which secrets are set, never their values", () => {
    const json = JSON.stringify({ credential: full() });
    assertNoSecret(json);
    assert.deepEqual(JSON.parse(json).credential, {
      source: 'config.json auths["*.example.io"]',
      username: "alice",
      password: "[redacted]",
      identityToken: "[redacted]",
      registryToken: "[redacted]",
    });
  });

  test("toString, template strings and util.inspect show no secret", () => {
    const credential = full();
    assertNoSecret(String(credential));
    assertNoSecret(`${credential}`);
    assertNoSecret(inspect(credential));
    assertNoSecret(inspect({ nested: [credential] }, { depth: 5 }));
    assert.match(String(credential), /config\.json auths/);
  });

  test("spreading or listing keys does not copy the secrets", () => {
    const credential = full();
    const copy = { ...credential };
    assertNoSecret(JSON.stringify(copy));
    assert.deepEqual(Object.keys(credential).sort(), ["source", "username"]);
  });

  test("an error message built from a credential carries no secret", () => {
    const error = new Error(`upstream refused ${full()}`);
    assertNoSecret(error.message);
    assertNoSecret(inspect(error));
  });

  test("a credential with nothing to authenticate with is empty", () => {
    assert.equal(new Credential({}, "x").isEmpty, true);
    assert.equal(new Credential({ identityToken: "t" }, "x").isEmpty, false);
  });

  test("distinct credentials keep the first source of each set of secrets, in order", () => {
    const a1 = new Credential({ username: "a", password: "1" }, "first");
    const b = new Credential({ username: "b", password: "1" }, "second");
    const a2 = new Credential({ username: "a", password: "1" }, "third");
    const token = new Credential({ identityToken: "1" }, "fourth");
    assert.deepEqual(
      distinctCredentials([a1, b, a2, token]).map((c) => c.source),
      ["first", "second", "fourth"],
    );
  });
});
