import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, randomUUID } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import jwt from "jsonwebtoken";
import { parse as parseYaml } from "yaml";
import { keyMatchesImage } from "../../server/upstream/credentials/registry-key.js";
import { startMirror } from "../mirror/mirror-fixture.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { bcryptHash, decodeToken, startTokenBerth, type TokenBerth } from "../auth/token-fixture.js";
import { cleanEnv, installPlugins, runPlugin, type PluginRun } from "./plugin-process.js";

const EXAMPLE_CONFIG = resolve(__dirname, "../../../config/credential-provider-config.example.yaml");
const PROVIDER_API = "credentialprovider.kubelet.k8s.io";
const NODE_PASSWORD = "node-secret";
const SA_ISSUER = "https://kubernetes.default.svc.cluster.local";

/** One `providers[]` entry of a kubelet CredentialProviderConfig. */
interface CredentialProvider {
  name: "berth-credential-provider";
  apiVersion: string;
  matchImages: string[];
  defaultCacheDuration: string;
  args?: string[];
  env?: { name: string; value: string }[];
}

interface ProviderResponse {
  kind: string;
  apiVersion: string;
  cacheKeyType: string;
  cacheDuration: string;
  auth: Record<string, { username: string; password: string }>;
}

/**
 * What kubelet's execPlugin does: run `<bin-dir>/<name> args...` with the node's environment
 * plus the provider's env, write the encoded request (one JSON line) to stdin, and read stdout.
 */
function execProvider(bin: string, provider: CredentialProvider, request: Record<string, unknown>, baseEnv = cleanEnv()): Promise<PluginRun> {
  const env = { ...baseEnv, ...Object.fromEntries((provider.env ?? []).map((e) => [e.name, e.value])) };
  return runPlugin(bin, provider.name, provider.args ?? [], env, `${JSON.stringify({ kind: "CredentialProviderRequest", apiVersion: provider.apiVersion, ...request })}\n`);
}

/** Checks the answer the way kubelet reads it, and returns it. */
function acceptedResponse(run: PluginRun, provider: CredentialProvider): ProviderResponse {
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim().split("\n").length, 1, "exactly one line on stdout");
  const response = JSON.parse(run.stdout) as ProviderResponse;
  assert.equal(response.kind, "CredentialProviderResponse");
  assert.equal(response.apiVersion, provider.apiVersion, "kubelet drops an answer in another apiVersion");
  assert.ok(["Image", "Registry", "Global"].includes(response.cacheKeyType));
  assert.match(response.cacheDuration, /^(\d+h)?(\d+m)?\d+s$/);
  assert.deepEqual(Object.keys(response).sort(), ["apiVersion", "auth", "cacheDuration", "cacheKeyType", "kind"], "kubelet decodes strictly: no unknown fields");
  return response;
}

describe("berth-credential-provider, driven as the kubelet drives it", () => {
  let work: TempDir;
  let bin: string;
  let berth: TokenBerth;
  let provider: CredentialProvider;
  let passwordFile: string;
  let saKey: { privateKey: string; publicKey: string };
  const saKid = randomUUID();

  before(async () => {
    work = await makeTempDir("kubelet-plugin");
    bin = await installPlugins(work.path);
    passwordFile = join(work.path, "node-password");
    await writeFile(passwordFile, `${NODE_PASSWORD}\n`, { mode: 0o600 });
    saKey = generateKeyPairSync("ec", { namedCurve: "P-256", publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
    const jwksFile = join(work.path, "cluster-jwks.json");
    await writeFile(jwksFile, JSON.stringify({ keys: [{ ...createPublicKey(saKey.publicKey).export({ format: "jwk" }), kid: saKid, alg: "ES256", use: "sig" }] }));
    berth = await startTokenBerth({
      nodes: [{ username: "node-1", passwordHash: bcryptHash(NODE_PASSWORD) }],
      serviceAccounts: { issuer: SA_ISSUER, audiences: ["berth"], jwksFile },
      policy: [
        { roles: ["node"], repositories: ["**"], actions: ["pull"] },
        { roles: ["serviceaccount"], repositories: ["{tenant}/**"], actions: ["pull"] },
      ],
    });
    provider = {
      name: "berth-credential-provider",
      apiVersion: `${PROVIDER_API}/v1`,
      matchImages: [berth.host],
      defaultCacheDuration: "5m",
      args: ["--username=node-1", `--password-file=${passwordFile}`],
      env: [{ name: "BERTH_URL", value: berth.url }],
    };
  });
  after(async () => {
    await berth.close();
    await work.remove();
  });

  it("answers one CredentialProviderResponse whose credential berth accepts for the node's pulls", async () => {
    const image = `${berth.host}/team-a/app`;
    const run = await execProvider(bin, provider, { image });
    const response = acceptedResponse(run, provider);
    assert.equal(run.stderr, "");
    assert.equal(response.cacheKeyType, "Registry");
    assert.equal(response.cacheDuration, "9m0s", "a minute below the 10m credential lifetime");
    assert.deepEqual(Object.keys(response.auth), [berth.host]);
    const { username, password } = response.auth[berth.host];
    assert.equal(username, "berth-token");

    // As skopeo/CRI-O use it: Basic credentials on GET /token.
    const viaGet = await berth.request().get("/token?service=berth&scope=repository:team-a/app:pull").auth(username, password).expect(200);
    assert.equal(decodeToken(viaGet.body.token).payload.sub, "node-1");
    assert.deepEqual(decodeToken(viaGet.body.token).payload.access, [{ type: "repository", name: "team-a/app", actions: ["pull"] }]);
    // As containerd uses it: the OAuth2 password grant.
    await berth
      .request()
      .post("/token")
      .type("form")
      .send(new URLSearchParams({ grant_type: "password", username, password, service: "berth", client_id: "containerd-client", scope: "repository:team-a/app:pull" }).toString())
      .expect(200);
  });

  it("keys its answer by the registry exactly as the image writes it, since the kubelet matches keys case-sensitively", async () => {
    const port = new URL(berth.url).port;
    const configured = { ...provider, args: [...provider.args!, `--registry=berth.example:${port}`] };
    const image = `Berth.Example:${port}/team-a/app`;
    const response = acceptedResponse(await execProvider(bin, configured, { image }), configured);
    assert.deepEqual(Object.keys(response.auth), [`Berth.Example:${port}`]);
    // kubelet v1.26 turns the answer into a keyring and looks the image up in it with
    // URLsMatchStr (pkg/credentialprovider/keyring.go): a case-sensitive glob per host label.
    assert.ok(keyMatchesImage(`Berth.Example:${port}`, image));
    assert.ok(!keyMatchesImage(`berth.example:${port}`, image), "a lowercased key would give the pull no credentials");
  });

  it("answers in the apiVersion it was asked in: v1beta1 and v1alpha1", async () => {
    for (const version of ["v1beta1", "v1alpha1"]) {
      const versioned = { ...provider, apiVersion: `${PROVIDER_API}/${version}` };
      const response = acceptedResponse(await execProvider(bin, versioned, { image: `${berth.host}/team-a/app` }), versioned);
      assert.equal(response.apiVersion, `${PROVIDER_API}/${version}`);
    }
  });

  it("sizes cacheDuration a minute below the credential's lifetime, never below 0s", async (t) => {
    for (const [refreshLifetime, cacheDuration] of [["2h", "1h59m0s"], ["61s", "1s"], ["45s", "0s"]]) {
      const other = await startTokenBerth({ nodes: [{ username: "node-1", passwordHash: bcryptHash(NODE_PASSWORD) }], token: { refreshLifetime } });
      t.after(() => other.close());
      const configured = { ...provider, env: [{ name: "BERTH_URL", value: other.url }] };
      const response = acceptedResponse(await execProvider(bin, configured, { image: `${other.host}/x/y` }), configured);
      assert.equal(response.cacheDuration, cacheDuration, refreshLifetime);
    }
  });

  it("forwards a pod's serviceAccountToken: a credential for its namespace, cached per image", async () => {
    const now = Math.floor(Date.now() / 1000);
    const saToken = jwt.sign(
      {
        iss: SA_ISSUER,
        aud: ["berth"],
        sub: "system:serviceaccount:team-a:builder",
        iat: now,
        nbf: now,
        exp: now + 3600,
        "kubernetes.io": { namespace: "team-a", serviceaccount: { name: "builder", uid: randomUUID() } },
      },
      saKey.privateKey,
      { algorithm: "ES256", keyid: saKid },
    );
    const withoutNodeCredential = { ...provider, args: [] };
    const response = acceptedResponse(await execProvider(bin, withoutNodeCredential, { image: `${berth.host}/team-a/app`, serviceAccountToken: saToken }), withoutNodeCredential);
    assert.equal(response.cacheKeyType, "Image");
    const { username, password } = response.auth[berth.host];
    const token = await berth.request().get("/token?service=berth&scope=repository:team-a/app:pull&scope=repository:team-b/app:pull").auth(username, password).expect(200);
    const { payload } = decodeToken(token.body.token);
    assert.equal(payload.sub, "system:serviceaccount:team-a:builder");
    assert.equal(payload.tenant, "team-a");
    assert.deepEqual(payload.access, [{ type: "repository", name: "team-a/app", actions: ["pull"] }]);
  });

  it("finds berth through the berth Service's BERTH_SERVICE_HOST and BERTH_SERVICE_PORT", async () => {
    const url = new URL(berth.url);
    const run = await execProvider(bin, { ...provider, env: [] }, { image: `${berth.host}/team-a/app` }, cleanEnv({ BERTH_SERVICE_HOST: url.hostname, BERTH_SERVICE_PORT: url.port }));
    acceptedResponse(run, provider);
  });

  it("works with the example CredentialProviderConfig's provider entry", async () => {
    const config = parseYaml(await readFile(EXAMPLE_CONFIG, "utf8")) as { apiVersion: string; kind: string; providers: CredentialProvider[] };
    assert.equal(config.apiVersion, "kubelet.config.k8s.io/v1");
    assert.equal(config.kind, "CredentialProviderConfig");
    const [example] = config.providers;
    assert.equal(example.name, "berth-credential-provider");
    assert.equal(example.apiVersion, `${PROVIDER_API}/v1`);
    assert.match(example.defaultCacheDuration, /^(\d+h)?(\d+m)?(\d+s)?$/);
    assert.ok(example.matchImages.length > 0);
    // The same flags and variables, pointed at this test's berth.
    const local = (value: string) => value.replace("/etc/berth/node-password", passwordFile).replace("berth.example:5000", berth.host).replace("http://berth.example:5000", berth.url);
    const here: CredentialProvider = { ...example, args: example.args?.map(local), env: example.env?.map((e) => ({ name: e.name, value: local(e.value) })) };
    const response = acceptedResponse(await execProvider(bin, here, { image: `${berth.host}/team-a/app` }), here);
    assert.deepEqual(Object.keys(response.auth), [berth.host]);
  });

  it("answers no credentials, quickly and in a form the kubelet caches, when berth asks for none (auth.mode none)", async (t) => {
    const open = await startMirror([]);
    t.after(() => open.stop());
    const host = new URL(open.url).host;
    const started = Date.now();
    const run = await execProvider(bin, { ...provider, env: [{ name: "BERTH_URL", value: open.url }] }, { image: `${host}/docker.io/library/nginx` });
    assert.ok(Date.now() - started < 10_000, "no retries, no waiting");
    assert.equal(run.code, 0, "a failure would be logged by the kubelet, and the plugin run again, on every pull");
    assert.equal(run.stdout.trim().split("\n").length, 1);
    // No cacheDuration: the kubelet keeps the answer for the provider's defaultCacheDuration.
    assert.deepEqual(JSON.parse(run.stdout), { kind: "CredentialProviderResponse", apiVersion: provider.apiVersion, cacheKeyType: "Registry", auth: {} });
    assert.match(run.stderr, /asks for no credentials .*auth\.mode none.*answering no credentials/);
  });

  describe("fails with a reason on stderr, a non-zero exit and nothing on stdout", () => {
    const failures: [string, () => Promise<PluginRun>, RegExp][] = [
      ["stdin that is not JSON", () => runPlugin(bin, "berth-credential-provider", provider.args!, cleanEnv({ BERTH_URL: berth.url }), "image: nope\n"), /not a JSON/],
      ["a request of another kind", () => runPlugin(bin, "berth-credential-provider", provider.args!, cleanEnv({ BERTH_URL: berth.url }), JSON.stringify({ kind: "Pod", apiVersion: `${PROVIDER_API}/v1`, image: "x" })), /kind/],
      ["an unknown apiVersion", () => execProvider(bin, { ...provider, apiVersion: `${PROVIDER_API}/v2` }, { image: `${berth.host}/a/b` }), /apiVersion/],
      ["a request without an image", () => execProvider(bin, provider, {}), /no image/],
      ["an image that is not on berth", () => execProvider(bin, provider, { image: "docker.io/library/nginx" }), /not on berth/],
      ["a wrong node password", () => execProvider(bin, { ...provider, args: ["--username=node-1"], env: [...provider.env!, { name: "BERTH_PASSWORD", value: "wrong" }] }, { image: `${berth.host}/a/b` }), /refused.*401/],
      ["no node credential", () => execProvider(bin, { ...provider, args: [] }, { image: `${berth.host}/a/b` }), /no node credential/],
      ["no berth URL", () => execProvider(bin, { ...provider, env: [] }, { image: `${berth.host}/a/b` }), /no berth URL/],
      ["an unknown flag", () => execProvider(bin, { ...provider, args: ["--pasword=x"] }, { image: `${berth.host}/a/b` }), /unknown option/i],
      [
        "an unreachable berth",
        async () => {
          const closed = createServer();
          await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
          const port = (closed.address() as AddressInfo).port;
          await new Promise<void>((r) => closed.close(() => r()));
          return execProvider(bin, { ...provider, env: [{ name: "BERTH_URL", value: `http://127.0.0.1:${port}` }], args: [...provider.args!, `--registry=${berth.host}`] }, { image: `${berth.host}/a/b` });
        },
        /cannot reach berth.*ECONNREFUSED/,
      ],
    ];
    for (const [what, run, reason] of failures) {
      it(`on ${what}`, async () => {
        const result = await run();
        assert.notEqual(result.code, 0);
        assert.equal(result.stdout, "");
        assert.match(result.stderr, reason);
        assert.match(result.stderr, /^berth-credential-provider: /);
      });
    }
  });
});
