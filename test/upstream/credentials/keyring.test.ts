import assert from "node:assert/strict";
import { mkdtemp, readFile, rename, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import type { Credential } from "../../../server/upstream/credentials/credential.js";
import { CredentialFileError } from "../../../server/upstream/credentials/credential-file.js";
import { isDockerHubImage, Keyring, type KeyringOptions, type KeyringProblem } from "../../../server/upstream/credentials/keyring.js";
import { KeyringUnion } from "../../../server/upstream/credentials/keyring-union.js";
import { FakeHelpers } from "./fake-helpers.js";

const b64 = (text: string) => Buffer.from(text).toString("base64");
const entry = (username: string, password: string) => ({ email: `${username}@example.com`, auth: b64(`${username}:${password}`) });
const names = (credentials: Credential[]) => credentials.map((c) => c.username);

let dir: string;
let fileNumber = 0;

/** Writes content to a new file (or replaces `path` atomically, as a Secret volume update does). */
async function writeCredentials(content: unknown, path = join(dir, `creds-${++fileNumber}.json`)): Promise<string> {
  const temp = `${path}.tmp`;
  await writeFile(temp, typeof content === "string" ? content : JSON.stringify(content));
  await rename(temp, path);
  return path;
}

async function keyringOf(contents: unknown[], options: KeyringOptions = {}): Promise<Keyring> {
  return new Keyring(await Promise.all(contents.map((content) => writeCredentials(content))), options);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "berth-keyring-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("kubelet keyring_test.go cases", () => {
  // TestDockerKeyringForGlob: a .dockercfg with one glob key; the target + "/foo/bar" finds it.
  const globHits: [glob: string, target: string][] = [
    ["https://hello.kubernetes.io", "hello.kubernetes.io"],
    ["https://*.docker.io", "prefix.docker.io"],
    ["https://prefix.*.io", "prefix.docker.io"],
    ["https://prefix.docker.*", "prefix.docker.io"],
    ["https://*.docker.io/path", "prefix.docker.io/path"],
    ["https://prefix.*.io/path", "prefix.docker.io/path/subpath"],
    ["https://prefix.docker.*/path", "prefix.docker.io/path"],
    ["https://*.docker.io:8888", "prefix.docker.io:8888"],
    ["https://prefix.*.io:8888", "prefix.docker.io:8888"],
    ["https://prefix.docker.*:8888", "prefix.docker.io:8888"],
    ["https://*.docker.io/path:1111", "prefix.docker.io/path:1111"],
    ["https://*.docker.io/v1/", "prefix.docker.io/path:1111"],
    ["https://*.docker.io/v2/", "prefix.docker.io/path:1111"],
    ["https://prefix.docker.*/path:1111", "prefix.docker.io/path:1111"],
    ["prefix.docker.io:1111", "prefix.docker.io:1111/path"],
    ["*.docker.io:1111", "prefix.docker.io:1111/path"],
  ];
  for (const [glob, target] of globHits) {
    test(`key ${glob} finds the credential for ${target}/foo/bar`, async () => {
      const keyring = await keyringOf([{ [glob]: entry("foo", "bar") }]);
      const [found] = await keyring.lookup(`${target}/foo/bar`);
      assert.equal(found?.username, "foo");
      assert.equal(found?.password, "bar");
    });
  }

  // TestKeyringMiss.
  const misses: [glob: string, lookup: string][] = [
    ["https://hello.kubernetes.io", "world.mesos.org/foo/bar"],
    ["https://*.docker.com", "prefix.docker.io"],
    ["https://suffix.*.io", "prefix.docker.io"],
    ["https://prefix.docker.c*", "prefix.docker.io"],
    ["https://prefix.*.io/path:1111", "prefix.docker.io/path/subpath:1111"],
    ["suffix.*.io", "prefix.docker.io"],
  ];
  for (const [glob, lookup] of misses) {
    test(`key ${glob} finds nothing for ${lookup}/foo/bar`, async () => {
      const keyring = await keyringOf([{ [glob]: entry("foo", "bar") }]);
      assert.deepEqual(await keyring.lookup(`${lookup}/foo/bar`), []);
    });
  }

  test("Docker Hub credentials are not offered to another registry (TestKeyringMissWithDockerHubCredentials)", async () => {
    const keyring = await keyringOf([{ "https://index.docker.io/v1/": entry("foo", "bar") }]);
    assert.deepEqual(await keyring.lookup("world.mesos.org/foo/bar"), []);
  });

  test("Docker Hub credentials serve Docker Hub images, qualified, normalised or not (TestKeyringHitWith*DockerHub)", async () => {
    const keyring = await keyringOf([{ "https://index.docker.io/v1/": entry("foo", "bar") }]);
    for (const image of ["google/docker-registry", "jenkins", "docker.io/google/docker-registry", "docker.io/library/jenkins", "index.docker.io/v1//google/docker-registry"]) {
      assert.deepEqual(names(await keyring.lookup(image)), ["foo"], image);
    }
  });

  test("every matching key, most specific first (TestDockerKeyringLookup)", async () => {
    const keyring = await keyringOf([{ auths: { "bar.example.com/pong": entry("grace", "squash"), "bar.example.com": entry("ada", "smash") } }]);
    const table: [image: string, expected: string[]][] = [
      ["bar.example.com", ["ada"]],
      ["bar.example.com/pong", ["grace", "ada"]],
      ["bar.example.com/ping", ["ada"]],
      ["bar.example.com/pongz", ["grace", "ada"]],
      ["bar.example.com/pong/pang", ["grace", "ada"]],
      ["example.com", []],
      ["foo.example.com", []],
    ];
    for (const [image, expected] of table) assert.deepEqual(names(await keyring.lookup(image)), expected, image);
  });

  test("a key with scheme and /v1/ path matches by host (TestIssue3797)", async () => {
    const keyring = await keyringOf([{ "https://quay.io/v1/": entry("rex", "tiny arms") }]);
    for (const image of ["quay.io", "quay.io/foo", "quay.io/foo/bar"]) {
      assert.deepEqual(names(await keyring.lookup(image)), ["rex"], image);
    }
  });
});

describe("keyring ordering and duplicates", () => {
  test("keys are tried in reverse byte order, across files: path before host before glob", async () => {
    const keyring = await keyringOf([
      { auths: { "*.io": entry("glob", "1"), "quay.io": entry("host", "2") } },
      { auths: { "quay.io/org": entry("org", "3"), "quay.io/org/app": entry("app", "4") } },
    ]);
    assert.deepEqual(names(await keyring.lookup("quay.io/org/app")), ["app", "org", "host", "glob"]);
  });

  test("credentials under the same key keep file order", async () => {
    const keyring = await keyringOf([{ auths: { "quay.io": entry("first", "1") } }, { "https://quay.io/v1/": entry("second", "2") }]);
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["first", "second"]);
  });

  test("the same secrets under several keys are returned once, from the most specific key", async () => {
    const keyring = await keyringOf([{ auths: { "quay.io": entry("same", "pw"), "quay.io/org": entry("same", "pw"), "*.io": entry("other", "pw") } }]);
    const found = await keyring.lookup("quay.io/org/app");
    assert.deepEqual(names(found), ["same", "other"]);
    assert.equal(found[0].source.endsWith('auths["quay.io/org"]'), true);
  });

  test("the port must match: a key without a port does not serve registry:5000", async () => {
    const keyring = await keyringOf([{ auths: { "registry.local": entry("noport", "1"), "registry.local:5000": entry("port", "2") } }]);
    assert.deepEqual(names(await keyring.lookup("registry.local:5000/app")), ["port"]);
    assert.deepEqual(names(await keyring.lookup("registry.local/app")), ["noport"]);
  });

  test("lookups return credentials that print without secrets", async () => {
    const keyring = await keyringOf([{ auths: { "quay.io": entry("robot", "very-secret-pw") } }]);
    const found = await keyring.lookup("quay.io/app");
    assert.ok(!JSON.stringify(found).includes("very-secret-pw"));
    assert.ok(!String(found).includes("very-secret-pw"));
  });
});

describe("Docker Hub, exactly as kubelet v1.26's BasicDockerKeyring.Lookup", () => {
  test("an image on docker.io takes the keys that match docker.io; index.docker.io's is not added to them", async () => {
    const keyring = await keyringOf([
      { auths: { "https://index.docker.io/v1/": entry("index", "1"), "registry-1.docker.io": entry("registry1", "2"), "docker.io": entry("docker", "3") } },
    ]);
    assert.deepEqual(names(await keyring.lookup("docker.io/library/nginx")), ["docker"]);
  });

  test("index.docker.io (where docker login writes) serves a docker.io image only when no key matched it", async () => {
    const keyring = await keyringOf([{ auths: { "https://index.docker.io/v1/": entry("index", "1"), "docker.io/myorg": entry("org", "2"), "quay.io": entry("quay", "3") } }]);
    assert.deepEqual(names(await keyring.lookup("docker.io/myorg/app")), ["org"]);
    assert.deepEqual(names(await keyring.lookup("docker.io/library/nginx")), ["index"]);
  });

  test("keys *.docker.io and registry-1.docker.io never match docker.io/... images (three host labels, not two)", async () => {
    const keyring = await keyringOf([{ auths: { "*.docker.io": entry("glob", "1"), "registry-1.docker.io": entry("registry1", "2") } }]);
    assert.deepEqual(await keyring.lookup("docker.io/library/nginx"), []);
  });

  test("the fallback is the exact key index.docker.io: not a path under it, not a glob matching it", async () => {
    const keyring = await keyringOf([{ auths: { "index.docker.io/myorg": entry("path", "1"), "*.docker.io": entry("glob", "2") } }]);
    assert.deepEqual(await keyring.lookup("docker.io/myorg/app"), []);
  });

  test("an image written on index.docker.io matches index.docker.io's keys as any host does, docker.io's not", async () => {
    const keyring = await keyringOf([{ auths: { "https://index.docker.io/v1/": entry("index", "1"), "docker.io/myorg": entry("org", "2") } }]);
    assert.deepEqual(names(await keyring.lookup("index.docker.io/myorg/app")), ["index"]);
  });

  test("other hosts that merely contain docker.io get no Docker Hub credentials", async () => {
    const keyring = await keyringOf([{ auths: { "https://index.docker.io/v1/": entry("index", "1") } }]);
    assert.deepEqual(await keyring.lookup("mydocker.io/app"), []);
    assert.deepEqual(await keyring.lookup("docker.io:5000/app"), []);
  });

  test("which images Docker Hub serves (TestIsDefaultRegistryMatch)", () => {
    const samples: [image: string, dockerHub: boolean][] = [
      ["foo/bar", true],
      ["docker.io/foo/bar", true],
      ["index.docker.io/foo/bar", true],
      ["foo", true],
      ["", false],
      ["registry.tld/foo/bar", false],
      ["registry:5000/foo/bar", false],
      ["myhostdocker.io/foo/bar", false],
    ];
    for (const [image, dockerHub] of samples) assert.equal(isDockerHubImage(image), dockerHub, image);
  });
});

describe("keyring with Secrets and credential helpers", () => {
  let helpers: FakeHelpers;
  before(async () => {
    helpers = await FakeHelpers.install();
    const answer = (user: string) => `echo "$(cat)" >> "$LOG"; echo '{"Username":"${user}","Secret":"from-helper"}'`;
    await helpers.add("gcloud", answer("gcloud-user"));
    await helpers.add("store", answer("store-user"));
    await helpers.add("nothing", "cat > /dev/null; echo 'credentials not found in native keychain'; exit 1");
    await helpers.add("broken", "cat > /dev/null; echo 'secret-in-output'; exit 2");
  });
  after(async () => {
    await helpers.remove();
  });
  beforeEach(async () => {
    for (const name of ["gcloud", "store"]) await writeFile(helpers.logPath(name), "");
  });
  const calls = async (name: string) => (await readFile(helpers.logPath(name), "utf8")).split("\n").filter(Boolean);

  test("reads a dockerconfigjson Secret manifest", async () => {
    const secret = `apiVersion: v1\nkind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: ${b64(JSON.stringify({ auths: { "*.example.io": entry("robot", "pw") } }))}\n`;
    const keyring = await keyringOf([secret]);
    const [found] = await keyring.lookup("pull.example.io/team/app");
    assert.equal(found.username, "robot");
    assert.match(found.source, /\.dockerconfigjson auths\["\*\.example\.io"\]$/);
  });

  test("a credHelpers key runs its helper with the image's registry, before the key's auths entry", async () => {
    const keyring = await keyringOf([{ auths: { "gcr.io": entry("static", "1") }, credHelpers: { "gcr.io": "gcloud" } }]);
    const found = await keyring.lookup("gcr.io/project/app");
    assert.deepEqual(names(found), ["gcloud-user", "static"]);
    assert.equal(found[0].password, "from-helper");
    assert.match(found[0].source, /credHelpers\["gcr\.io"\] \(docker-credential-gcloud\)$/);
    assert.deepEqual(await calls("gcloud"), ["gcr.io"]);
    assert.deepEqual(await keyring.lookup("quay.io/app"), []);
  });

  test("credsStore is asked about any registry, after every keyed credential; Docker Hub as https://index.docker.io/v1/", async () => {
    const keyring = await keyringOf([{ auths: { "quay.io": entry("static", "1"), "https://index.docker.io/v1/": {} }, credsStore: "store" }], { helperCacheMs: 0 });
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["static", "store-user"]);
    assert.deepEqual(names(await keyring.lookup("registry.local:5000/app")), ["store-user"]);
    assert.deepEqual(names(await keyring.lookup("docker.io/library/nginx")), ["store-user"]);
    assert.deepEqual(await calls("store"), ["quay.io", "registry.local:5000", "https://index.docker.io/v1/"]);
  });

  test("a helper's answer is reused for helperCacheMs, and concurrent lookups share one run", async () => {
    const keyring = await keyringOf([{ credHelpers: { "gcr.io": "gcloud" } }], { helperCacheMs: 60_000 });
    await Promise.all([keyring.lookup("gcr.io/a"), keyring.lookup("gcr.io/b"), keyring.lookup("gcr.io/c")]);
    await keyring.lookup("gcr.io/d");
    assert.equal((await calls("gcloud")).length, 1);
    const uncached = await keyringOf([{ credHelpers: { "gcr.io": "gcloud" } }], { helperCacheMs: 0 });
    await uncached.lookup("gcr.io/a");
    await uncached.lookup("gcr.io/b");
    assert.equal((await calls("gcloud")).length, 3);
  });

  test("a failing or empty helper is reported (without its output) and the other credentials still come back", async () => {
    const problems: KeyringProblem[] = [];
    const keyring = await keyringOf([{ auths: { "quay.io": entry("static", "1") }, credHelpers: { "quay.io": "broken", "*.io": "nothing", "registry.io": "absent" } }], {
      onProblem: (p) => problems.push(p),
    });
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["static"]);
    assert.deepEqual(await keyring.lookup("registry.io/app"), []);
    assert.deepEqual(
      problems.map((p) => p.code),
      ["CREDENTIAL_HELPER_FAILED", "CREDENTIAL_HELPER_MISSING"],
    );
    assert.ok(problems.every((p) => !p.message.includes("secret-in-output")));
  });
});

describe("keyring reloading", () => {
  test("a replaced file is re-read at the next lookup", async () => {
    const path = await writeCredentials({ auths: { "quay.io": entry("before", "1") } });
    const keyring = new Keyring([path]);
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["before"]);
    await writeCredentials({ auths: { "quay.io": entry("after", "2") } }, path);
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["after"]);
  });

  test("a file rewritten in place is re-read when its mtime changes", async () => {
    const path = join(dir, "in-place.json");
    await writeFile(path, JSON.stringify({ auths: { "quay.io": entry("aaaa", "1") } }));
    await utimes(path, new Date(1_000_000), new Date(1_000_000));
    const keyring = new Keyring([path]);
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["aaaa"]);
    await writeFile(path, JSON.stringify({ auths: { "quay.io": entry("bbbb", "1") } }));
    await utimes(path, new Date(1_000_000), new Date(1_000_000));
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["aaaa"], "same inode, size and mtime: not re-read");
    await utimes(path, new Date(2_000_000), new Date(2_000_000));
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["bbbb"]);
  });

  test("a malformed edit keeps the last good credentials and is reported once", async () => {
    const problems: KeyringProblem[] = [];
    const path = await writeCredentials({ auths: { "quay.io": entry("good", "1") } });
    const keyring = new Keyring([path], { onProblem: (p) => problems.push(p) });
    await keyring.lookup("quay.io/app");
    await writeCredentials('{"auths": {"quay.io": {"password": "half-written', path);
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["good"]);
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["good"]);
    assert.deepEqual(
      problems.map((p) => [p.code, p.message.startsWith(`${path}: invalid JSON`), p.message.includes("half-written")]),
      [["CREDENTIAL_FILE_INVALID", true, false]],
    );
  });

  test("a deleted file drops its credentials, is reported once, and counts again when restored", async () => {
    const problems: KeyringProblem[] = [];
    const path = await writeCredentials({ auths: { "quay.io": entry("present", "1") } });
    const keyring = new Keyring([path], { onProblem: (p) => problems.push(p) });
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["present"]);
    await rm(path);
    assert.deepEqual(await keyring.lookup("quay.io/app"), []);
    assert.deepEqual(await keyring.lookup("quay.io/app"), []);
    assert.deepEqual(
      problems.map((p) => [p.code, p.message]),
      [["CREDENTIAL_FILE_UNREADABLE", `${path}: cannot read (ENOENT)`]],
    );
    await writeCredentials({ auths: { "quay.io": entry("restored", "1") } }, path);
    assert.deepEqual(names(await keyring.lookup("quay.io/app")), ["restored"]);
  });

  test("load() throws the first unusable file, and reports keys kubelet would ignore", async () => {
    const problems: KeyringProblem[] = [];
    const good = await writeCredentials({ auths: { "quay.io": entry("good", "1"), "bad^host.io": entry("bad", "2") } });
    await new Keyring([good], { onProblem: (p) => problems.push(p) }).load();
    assert.deepEqual(
      problems.map((p) => [p.code, p.message]),
      [["CREDENTIAL_KEY_IGNORED", `${good} auths["bad^host.io"]: not a registry URL kubelet can parse; ignored`]],
    );
    const malformed = await writeCredentials("{");
    await assert.rejects(new Keyring([good, malformed]).load(), (err: unknown) => err instanceof CredentialFileError && err.code === "CREDENTIAL_FILE_INVALID");
    await assert.rejects(new Keyring([join(dir, "missing.json")]).load(), (err: unknown) => err instanceof CredentialFileError && err.code === "CREDENTIAL_FILE_UNREADABLE");
  });
});

describe("keyring union", () => {
  test("every credential of the first keyring comes before the second's, each set of secrets once", async () => {
    const own = await keyringOf([{ auths: { "quay.io": entry("own", "1"), "quay.io/org": entry("shared", "x") } }]);
    const global = await keyringOf([{ auths: { "quay.io/org/app": entry("global", "2"), "quay.io": entry("shared", "x") } }]);
    assert.deepEqual(names(await new KeyringUnion([own, global]).lookup("quay.io/org/app")), ["shared", "own", "global"]);
  });
});
