import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  CredentialFileError,
  parseCredentialFile,
  readCredentialFile,
  type CredentialFile,
} from "../../../server/upstream/credentials/credential-file.js";

const PATH = "/etc/berth/creds.json";
const b64 = (text: string) => Buffer.from(text).toString("base64");

function credentials(file: CredentialFile) {
  return file.credentials.map(({ key, credential }) => ({
    key,
    username: credential.username,
    password: credential.password,
    identityToken: credential.identityToken,
    registryToken: credential.registryToken,
    source: credential.source,
  }));
}

function parseError(text: string, path = PATH): CredentialFileError {
  try {
    parseCredentialFile(text, path);
  } catch (err) {
    assert.ok(err instanceof CredentialFileError, `not a CredentialFileError: ${err}`);
    return err;
  }
  assert.fail("parsed without error");
}

function assertUsableMessage(error: CredentialFileError, secrets: string[]): void {
  assert.equal(error.code, "CREDENTIAL_FILE_INVALID");
  assert.equal(error.path, PATH);
  assert.ok(error.message.startsWith(`${PATH}:`), error.message);
  assert.ok(!error.message.includes("\n"), `not one line: ${error.message}`);
  for (const secret of secrets) assert.ok(!error.message.includes(secret), `leaked ${secret}: ${error.message}`);
}

describe("kubelet's docker config entry decoding (config_test.go)", () => {
  // TestDockerConfigEntryJSONDecode, with each entry under a .dockercfg key.
  const entries: [entry: string, expected: { username?: string; password?: string } | "fails"][] = [
    ['{"username": "foo", "password": "bar", "email": "foo@example.com"}', { username: "foo", password: "bar" }],
    ['{"auth": "Zm9vOmJhcg==", "email": "foo@example.com"}', { username: "foo", password: "bar" }],
    ['{"username": "foo", "password": "bar", "auth": "cGluZzpwb25n", "email": "foo@example.com"}', { username: "ping", password: "pong" }],
    ['{"auth": "pants", "email": "foo@example.com"}', "fails"],
    ['{"email": false}', "fails"],
  ];
  for (const [entry, expected] of entries) {
    test(`entry ${entry} ${expected === "fails" ? "is rejected" : `gives ${expected.username}`}`, () => {
      const text = `{"https://registry.example.com": ${entry}}`;
      if (expected === "fails") {
        assert.throws(() => parseCredentialFile(text, PATH), CredentialFileError);
        return;
      }
      const [found] = credentials(parseCredentialFile(text, PATH));
      assert.equal(found.username, expected.username);
      assert.equal(found.password, expected.password);
    });
  }

  // TestDecodeDockerConfigFieldAuth (the current table, with unpadded and wrapped input).
  const auths: [auth: string, expected: [string, string] | "fails"][] = [
    ["Zm9vOmJhcg==", ["foo", "bar"]],
    ["Zm9vOmJhcg", ["foo", "bar"]],
    ["Zm9vOm\nJhcg==\n", ["foo", "bar"]],
    [Buffer.from("foo:bar").toString("base64"), ["foo", "bar"]],
    ["cGFudHM=", "fails"],
    ["Zm9vOmJhcg== ", "fails"],
    ["pants", "fails"],
    ["Zm9v-mJhcg==", "fails"],
  ];
  for (const [auth, expected] of auths) {
    test(`auth ${JSON.stringify(auth)} ${expected === "fails" ? "is rejected" : `decodes to ${expected.join(":")}`}`, () => {
      const text = JSON.stringify({ auths: { "registry.example.com": { auth } } });
      if (expected === "fails") {
        assertUsableMessage(parseError(text), [auth.trim()]);
        return;
      }
      const [found] = credentials(parseCredentialFile(text, PATH));
      assert.deepEqual([found.username, found.password], expected);
    });
  }

  test("the password is everything after the first colon, newline included", () => {
    const text = JSON.stringify({ auths: { "http://foo.example.com": { auth: "Zm9vOmJhcgo=", email: "foo@example.com" } } });
    const [found] = credentials(parseCredentialFile(text, PATH));
    assert.deepEqual([found.username, found.password], ["foo", "bar\n"]);
    const colons = credentials(parseCredentialFile(JSON.stringify({ auths: { r: { auth: b64("u:p:a:ss") } } }), PATH));
    assert.equal(colons[0].password, "p:a:ss");
  });
});

describe("docker config.json", () => {
  test("reads auths with username/password, auth, identitytoken and registrytoken, keyed as kubelet keys them", () => {
    const file = parseCredentialFile(
      JSON.stringify({
        auths: {
          "http://foo.example.com": { username: "foo", password: "bar", email: "foo@example.com" },
          "https://index.docker.io/v1/": { auth: b64("hub:secret") },
          "*.example.io": { identitytoken: "refresh-me" },
          "registry.example.net/v2/team": { registrytoken: "bearer-me" },
        },
        HttpHeaders: { "User-Agent": "x" },
        psFormat: "table",
      }),
      PATH,
    );
    assert.equal(file.format, "docker-config");
    assert.deepEqual(credentials(file), [
      { key: "foo.example.com", username: "foo", password: "bar", identityToken: undefined, registryToken: undefined, source: `${PATH} auths["http://foo.example.com"]` },
      { key: "index.docker.io", username: "hub", password: "secret", identityToken: undefined, registryToken: undefined, source: `${PATH} auths["https://index.docker.io/v1/"]` },
      { key: "*.example.io", username: undefined, password: undefined, identityToken: "refresh-me", registryToken: undefined, source: `${PATH} auths["*.example.io"]` },
      { key: "registry.example.net/team", username: undefined, password: undefined, identityToken: undefined, registryToken: "bearer-me", source: `${PATH} auths["registry.example.net/v2/team"]` },
    ]);
  });

  test("reads credHelpers per registry and credsStore as the default helper", () => {
    const file = parseCredentialFile(
      JSON.stringify({ auths: { "https://index.docker.io/v1/": {} }, credHelpers: { "gcr.io": "gcloud", "https://*.dkr.ecr.us-east-1.amazonaws.com": "ecr-login" }, credsStore: "desktop" }),
      PATH,
    );
    assert.deepEqual(file.helpers, [
      { key: "gcr.io", helper: "gcloud", source: `${PATH} credHelpers["gcr.io"] (docker-credential-gcloud)` },
      {
        key: "*.dkr.ecr.us-east-1.amazonaws.com",
        helper: "ecr-login",
        source: `${PATH} credHelpers["https://*.dkr.ecr.us-east-1.amazonaws.com"] (docker-credential-ecr-login)`,
      },
    ]);
    assert.deepEqual(file.store, { helper: "desktop", source: `${PATH} credsStore (docker-credential-desktop)` });
    assert.deepEqual(file.credentials, [], "an empty auths entry only marks a registry held by the store");
  });

  test("field names match case-insensitively, as Go's encoding/json does", () => {
    const file = parseCredentialFile('{"Auths": {"r.io": {"Username": "u", "PASSWORD": "p"}}}', PATH);
    assert.deepEqual([file.credentials[0].credential.username, file.credentials[0].credential.password], ["u", "p"]);
  });

  test("an entry with only a username keeps an empty password", () => {
    const [found] = credentials(parseCredentialFile('{"auths": {"r.io": {"username": "u"}}}', PATH));
    assert.deepEqual([found.username, found.password], ["u", ""]);
  });

  test("locations kubelet cannot parse are listed as ignored, the rest still load", () => {
    const file = parseCredentialFile(JSON.stringify({ auths: { "bad\\host.io": { auth: b64("a:b") }, "good.io": { auth: b64("c:d") } } }), PATH);
    assert.deepEqual(file.ignored, [`${PATH} auths["bad\\\\host.io"]`]);
    assert.deepEqual(file.credentials.map((c) => c.key), ["good.io"]);
  });

  test("an empty file or a config without credentials yields nothing", () => {
    for (const text of ["", "  \n", "{}", '{"HttpHeaders": {"User-Agent": "x"}, "proxies": {"default": {"httpProxy": "http://p"}}}']) {
      const file = parseCredentialFile(text, PATH);
      assert.equal(file.format, "docker-config", text);
      assert.deepEqual([file.credentials, file.helpers, file.store], [[], [], undefined], text);
    }
  });

  test("a helper name that is not a plain executable suffix is rejected", () => {
    assertUsableMessage(parseError('{"credHelpers": {"gcr.io": "../../bin/sh"}}'), []);
    assertUsableMessage(parseError('{"credsStore": "a b"}'), []);
  });
});

describe("legacy .dockercfg", () => {
  test("reads a top-level map of registries (kubelet TestDockerConfigJSONDecode)", () => {
    const file = parseCredentialFile(
      '{"http://foo.example.com":{"username": "foo", "password": "bar", "email": "foo@example.com"}, "http://bar.example.com":{"username": "bar", "password": "baz", "email": "bar@example.com"}}',
      PATH,
    );
    assert.equal(file.format, "dockercfg");
    assert.deepEqual(
      credentials(file).map((c) => [c.key, c.username, c.password, c.source]),
      [
        ["foo.example.com", "foo", "bar", `${PATH} ["http://foo.example.com"]`],
        ["bar.example.com", "bar", "baz", `${PATH} ["http://bar.example.com"]`],
      ],
    );
  });
});

describe("Kubernetes Secrets", () => {
  const dockerConfigJson = JSON.stringify({ auths: { "registry.example.com": { auth: b64("robot:s3cret") } }, credHelpers: { "gcr.io": "gcloud" } });
  const expected = [["registry.example.com", "robot", "s3cret"]];
  const summary = (file: CredentialFile) => credentials(file).map((c) => [c.key, c.username, c.password]);

  test("kubernetes.io/dockerconfigjson in YAML with base64 data", () => {
    const file = parseCredentialFile(
      `apiVersion: v1\nkind: Secret\nmetadata:\n  name: pull\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: ${b64(dockerConfigJson)}\n`,
      PATH,
    );
    assert.equal(file.format, "secret");
    assert.deepEqual(summary(file), expected);
    assert.equal(file.credentials[0].credential.source, `${PATH} .dockerconfigjson auths["registry.example.com"]`);
    assert.deepEqual(file.helpers, [], "kubelet reads only the credentials of a Secret, never helpers");
  });

  test("kubernetes.io/dockerconfigjson in JSON (kubectl get -o json)", () => {
    const secret = { apiVersion: "v1", kind: "Secret", type: "kubernetes.io/dockerconfigjson", data: { ".dockerconfigjson": b64(dockerConfigJson) } };
    assert.deepEqual(summary(parseCredentialFile(JSON.stringify(secret, null, 2), PATH)), expected);
  });

  test("stringData holds the JSON as text, and wins over data", () => {
    const text = [
      "apiVersion: v1",
      "kind: Secret",
      "type: kubernetes.io/dockerconfigjson",
      "data:",
      `  .dockerconfigjson: ${b64(JSON.stringify({ auths: { "old.example.com": { auth: b64("old:old") } } }))}`,
      "stringData:",
      "  .dockerconfigjson: |",
      `    ${dockerConfigJson}`,
    ].join("\n");
    assert.deepEqual(summary(parseCredentialFile(text, PATH)), expected);
  });

  test("kubernetes.io/dockercfg with data and stringData", () => {
    const dockercfg = JSON.stringify({ "https://registry.example.com": { auth: b64("robot:s3cret"), email: "r@example.com" } });
    const withData = parseCredentialFile(`kind: Secret\ntype: kubernetes.io/dockercfg\ndata:\n  .dockercfg: ${b64(dockercfg)}\n`, PATH);
    assert.deepEqual(summary(withData), expected);
    assert.equal(withData.credentials[0].credential.source, `${PATH} .dockercfg ["https://registry.example.com"]`);
    const withStringData = parseCredentialFile(JSON.stringify({ kind: "Secret", type: "kubernetes.io/dockercfg", stringData: { ".dockercfg": dockercfg } }), PATH);
    assert.deepEqual(summary(withStringData), expected);
  });

  test("a Secret of another type, without the data key, or with bad base64 is rejected with a clear message", () => {
    const cases: [string, RegExp][] = [
      ["kind: Secret\ntype: Opaque\ndata:\n  password: c2VjcmV0\n", /Secret type "Opaque" is not kubernetes\.io\/dockerconfigjson/],
      ["kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockercfg: e30=\n", /data\["\.dockerconfigjson"\] is missing/],
      ["kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: 'e30=!'\n", /data\["\.dockerconfigjson"\] is not valid base64/],
      [`kind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: ${b64('{"auths": {"r.io": {"auth": "s3cretpass"')}\n`, /\.dockerconfigjson invalid JSON/],
    ];
    for (const [text, message] of cases) {
      const error = parseError(text);
      assertUsableMessage(error, ["s3cretpass"]);
      assert.match(error.message, message);
    }
  });
});

describe("malformed files", () => {
  test("invalid JSON names the file and the position, never the content", () => {
    const error = parseError('{"auths": {"r.io": {"password": "hunter2" "x"}}}');
    assertUsableMessage(error, ["hunter2"]);
    assert.match(error.message, /invalid JSON at line 1 column \d+/);
  });

  test("invalid YAML names the file and the position, never the content", () => {
    const error = parseError('kind: Secret\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: "hunter2\n  - [\n');
    assertUsableMessage(error, ["hunter2"]);
    assert.match(error.message, /invalid YAML at line \d+ column \d+/);
  });

  test("wrong types name the field", () => {
    const cases: [string, RegExp][] = [
      ["[]", /content must be a JSON or YAML object/],
      ['{"auths": []}', /auths must be an object/],
      ['{"auths": {"r.io": "hunter2"}}', /auths\["r\.io"\] must be an object/],
      ['{"auths": {"r.io": {"password": 12}}}', /auths\["r\.io"\]\.password must be a string/],
      ['{"auths": {"r.io": {"auth": "aHVudGVyMg=="}}}', /auths\["r\.io"\]\.auth must be base64 of "username:password"/],
      ['{"credsStore": 7}', /credsStore must be a string/],
    ];
    for (const [text, message] of cases) {
      const error = parseError(text);
      assertUsableMessage(error, ["hunter2", "aHVudGVyMg=="]);
      assert.match(error.message, message);
    }
  });
});

describe("reading a credential file", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-credfile-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("reads and parses the file at the path", async () => {
    const path = join(dir, "config.json");
    await writeFile(path, JSON.stringify({ auths: { "r.io": { auth: b64("u:p") } } }));
    const file = await readCredentialFile(path);
    assert.equal(file.credentials[0].credential.source, `${path} auths["r.io"]`);
  });

  test("a missing file is an UNREADABLE error naming the file and the reason", async () => {
    const path = join(dir, "absent.json");
    await assert.rejects(readCredentialFile(path), (err: unknown) => {
      assert.ok(err instanceof CredentialFileError);
      assert.equal(err.code, "CREDENTIAL_FILE_UNREADABLE");
      assert.equal(err.message, `${path}: cannot read (ENOENT)`);
      return true;
    });
  });
});
