import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { CommandError, runCommand, type CommandResult } from "../support/command.js";
import { readDirImage } from "../support/dir-image.js";
import { buildImage, type BuiltImage } from "../support/oci-image-builder.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { cleanEnv, installPlugins, runPlugin } from "../plugins/plugin-process.js";
import { bcryptHash, decodeToken } from "./token-fixture.js";

const CI_PASSWORD = "ci-secret";
/** Short, so the test can watch a credential expire; long enough for skopeo to start and fetch a token with it. */
const CREDENTIAL_LIFETIME = "4s";

/** skopeo with plain HTTP and no host policy, in a given environment (PATH finds the credential helper). */
function skopeo(args: string[], env: NodeJS.ProcessEnv): Promise<CommandResult> {
  return runCommand("skopeo", ["--insecure-policy", "--registries-conf", "/dev/null", ...args], { env, timeoutMs: 120_000 });
}

async function skopeoFails(args: string[], env: NodeJS.ProcessEnv): Promise<CommandError> {
  try {
    await skopeo(args, env);
  } catch (err) {
    if (err instanceof CommandError) return err;
    throw err;
  }
  assert.fail(`skopeo ${args.join(" ")} succeeded`);
}

describe("skopeo against a token-mode berth", () => {
  let work: TempDir;
  let bin: string;
  let berth: BerthProcess;
  let image: BuiltImage;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    work = await makeTempDir("skopeo-token");
    bin = await installPlugins(work.path);
    image = await buildImage(join(work.path, "layout"), { ref: "app", layers: [{ size: 4096 }, { size: 1024 }] });
    berth = await BerthProcess.start({
      config: {
        auth: {
          mode: "token",
          token: { refreshLifetime: CREDENTIAL_LIFETIME },
          users: [{ username: "ci", passwordHash: bcryptHash(CI_PASSWORD) }],
          policy: [{ subjects: ["ci"], repositories: ["team/**"], actions: ["pull", "push"] }],
        },
      },
    });
    env = cleanEnv({ PATH: `${bin}:${process.env.PATH}`, BERTH_URL: berth.url, BERTH_USERNAME: "ci", BERTH_PASSWORD: CI_PASSWORD });
  });
  after(async () => {
    await berth.close();
    await work.remove();
  });

  /** A credential from the helper, as `docker-credential-berth get` answers it. */
  async function helperCredential(): Promise<{ username: string; secret: string; expiresAt: number }> {
    const run = await runPlugin(bin, "docker-credential-berth", ["get"], env, berth.host);
    assert.equal(run.code, 0, run.stderr);
    const answer = JSON.parse(run.stdout) as { Username: string; Secret: string };
    return { username: answer.Username, secret: answer.Secret, expiresAt: decodeToken(answer.Secret).payload.exp as number };
  }

  it("pushes and pulls with credentials skopeo gets from docker-credential-berth (credHelpers in its auth file)", async () => {
    const authfile = join(work.path, "auth-helper.json");
    await writeFile(authfile, JSON.stringify({ credHelpers: { [berth.host]: "berth" } }));
    await skopeo(["copy", "--quiet", "--dest-tls-verify=false", "--authfile", authfile, image.source, `docker://${berth.host}/team/app:v1`], env);
    const out = join(work.path, "pulled-helper");
    await skopeo(["copy", "--quiet", "--src-tls-verify=false", "--authfile", authfile, `docker://${berth.host}/team/app:v1`, `dir:${out}`], env);
    const pulled = await readDirImage(out);
    assert.equal(pulled.manifestDigest, image.digest, "the manifest came back byte for byte");
    for (const layer of image.manifests[0].layers) assert.equal(pulled.blobs.get(layer.digest), layer.digest);
  });

  it("pulls with what a kubelet-style run of berth-credential-provider answers for berth.example:5000/team/kubelet-app, until it expires", async () => {
    const push = await helperCredential();
    await skopeo(["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", `${push.username}:${push.secret}`, image.source, `docker://${berth.host}/team/kubelet-app:v1`], env);
    // As the kubelet runs it: provider args and env, one CredentialProviderRequest line on stdin, one document on stdout.
    const request = { kind: "CredentialProviderRequest", apiVersion: "credentialprovider.kubelet.k8s.io/v1", image: "berth.example:5000/team/kubelet-app" };
    const run = await runPlugin(bin, "berth-credential-provider", ["--username=ci", "--registry=berth.example:5000"], cleanEnv({ BERTH_URL: berth.url, BERTH_PASSWORD: CI_PASSWORD }), `${JSON.stringify(request)}\n`);
    assert.equal(run.code, 0, run.stderr);
    const response = JSON.parse(run.stdout) as { apiVersion: string; auth: Record<string, { username: string; password: string }> };
    assert.equal(response.apiVersion, request.apiVersion);
    const { username, password } = response.auth["berth.example:5000"];
    const expiresAt = decodeToken(password).payload.exp as number;

    // The node resolves berth.example:5000 to berth; skopeo presents what the runtime was handed.
    const creds = `${username}:${password}`;
    await skopeo(["copy", "--quiet", "--src-tls-verify=false", "--src-creds", creds, `docker://${berth.host}/team/kubelet-app:v1`, `dir:${join(work.path, "pulled-kubelet")}`], env);
    assert.equal((await readDirImage(join(work.path, "pulled-kubelet"))).manifestDigest, image.digest);

    const waitMs = (expiresAt + 1) * 1000 - Date.now();
    if (waitMs > 0) await sleep(waitMs);
    const late = await skopeoFails(["copy", "--quiet", "--src-tls-verify=false", "--src-creds", creds, `docker://${berth.host}/team/kubelet-app:v1`, `dir:${join(work.path, "pulled-kubelet-late")}`], env);
    assert.match(late.stderr, /unauthorized|invalid refresh token/i);
  });

  it("refuses skopeo without credentials, and with credentials that do not grant the repository", async () => {
    const none = join(work.path, "auth-none.json");
    await writeFile(none, "{}");
    const anonymous = await skopeoFails(["copy", "--quiet", "--dest-tls-verify=false", "--authfile", none, image.source, `docker://${berth.host}/team/anonymous:v1`], env);
    assert.match(anonymous.stderr, /401|unauthorized|denied/i);
    const credential = await helperCredential();
    const creds = `${credential.username}:${credential.secret}`;
    const denied = await skopeoFails(["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds, image.source, `docker://${berth.host}/other/app:v1`], env);
    assert.match(denied.stderr, /403 \(Forbidden\)|denied/i, "an authenticated principal policy denies gets 403");
    const absent = await skopeoFails(["list-tags", "--tls-verify=false", "--creds", creds, `docker://${berth.host}/team/anonymous`], env);
    assert.match(absent.stderr, /404 \(Not Found\)|not known to registry/, "the anonymous push created nothing");
  });

  it("stops working once the helper's credential expires", async () => {
    const pushCredential = await helperCredential();
    await skopeo(["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", `${pushCredential.username}:${pushCredential.secret}`, image.source, `docker://${berth.host}/team/app:v2`], env);
    // Each skopeo run needs its credential only until it has fetched its token: fresh ones keep a slow machine from failing here.
    const credential = await helperCredential();
    const creds = `${credential.username}:${credential.secret}`;
    await skopeo(["copy", "--quiet", "--src-tls-verify=false", "--src-creds", creds, `docker://${berth.host}/team/app:v2`, `dir:${join(work.path, "pulled-v2")}`], env);

    const waitMs = (credential.expiresAt + 1) * 1000 - Date.now();
    if (waitMs > 0) await sleep(waitMs);

    const pull = await skopeoFails(["copy", "--quiet", "--src-tls-verify=false", "--src-creds", creds, `docker://${berth.host}/team/app:v2`, `dir:${join(work.path, "pulled-late")}`], env);
    assert.match(pull.stderr, /unauthorized|invalid refresh token/i);
    const push = await skopeoFails(["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds, image.source, `docker://${berth.host}/team/app:v3`], env);
    assert.match(push.stderr, /unauthorized|invalid refresh token/i);

    const fresh = await helperCredential();
    const tags = await skopeo(["list-tags", "--tls-verify=false", "--creds", `${fresh.username}:${fresh.secret}`, `docker://${berth.host}/team/app`], env);
    assert.deepEqual((JSON.parse(tags.stdout) as { Tags: string[] }).Tags.sort(), ["v1", "v2"], "the refused push wrote no tag");
  });
});
