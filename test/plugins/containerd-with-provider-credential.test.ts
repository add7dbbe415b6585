import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import { buildImage, type BuiltImage } from "../support/oci-image-builder.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { bcryptHash } from "../auth/token-fixture.js";
import { cleanEnv, installPlugins, runPlugin } from "./plugin-process.js";

const NODE_PASSWORD = "node-secret";
const CI_PASSWORD = "ci-secret";

/**
 * The kubelet hands the runtime whatever the plugin answered as username/password; containerd
 * then trades it at berth's /token (an OAuth2 password grant) for a pull token.
 */
describe("containerd pulls from a token-mode berth with the kubelet plugin's credential", () => {
  let work: TempDir;
  let bin: string;
  let berth: BerthProcess;
  let containerd: Containerd;
  let image: BuiltImage;

  before(async () => {
    work = await makeTempDir("containerd-provider");
    bin = await installPlugins(work.path);
    berth = await BerthProcess.start({
      config: {
        auth: {
          mode: "token",
          users: [{ username: "ci", passwordHash: bcryptHash(CI_PASSWORD) }],
          nodes: [{ username: "node-1", passwordHash: bcryptHash(NODE_PASSWORD) }],
          policy: [
            { subjects: ["ci"], repositories: ["team/**"], actions: ["pull", "push"] },
            { roles: ["node"], repositories: ["team/**"], actions: ["pull"] },
          ],
        },
      },
    });
    image = await buildImage(join(work.path, "layout"), { ref: "app" });
    const ciToken = await runPlugin(bin, "docker-credential-berth", ["get"], cleanEnv({ BERTH_URL: berth.url, BERTH_USERNAME: "ci", BERTH_PASSWORD: CI_PASSWORD }), berth.host);
    const { Username, Secret } = JSON.parse(ciToken.stdout) as { Username: string; Secret: string };
    await skopeoCopy(image.source, `docker://${berth.host}/team/app:v1`, { destCreds: `${Username}:${Secret}` });
    containerd = await Containerd.start();
    await containerd.setHosts(berth.host, {});
  });
  after(async () => {
    await containerd?.close();
    await berth.close();
    await work.remove();
  });

  it("pulls with the credential, and not without one", async () => {
    const passwordFile = join(work.path, "node-password");
    await writeFile(passwordFile, NODE_PASSWORD, { mode: 0o600 });
    const request = { kind: "CredentialProviderRequest", apiVersion: "credentialprovider.kubelet.k8s.io/v1", image: `${berth.host}/team/app` };
    const run = await runPlugin(bin, "berth-credential-provider", ["--username=node-1", `--password-file=${passwordFile}`], cleanEnv({ BERTH_URL: berth.url }), `${JSON.stringify(request)}\n`);
    assert.equal(run.code, 0, run.stderr);
    const { username, password } = (JSON.parse(run.stdout) as { auth: Record<string, { username: string; password: string }> }).auth[berth.host];

    await assert.rejects(containerd.pull(`${berth.host}/team/app:v1`), /401|unauthorized|authorization failed/i);
    const pulled = await containerd.pull(`${berth.host}/team/app:v1`, { user: `${username}:${password}` });
    assert.equal(pulled.digest, image.digest);
    for (const layer of image.manifests[0].layers) assert.ok(pulled.contentDigests.includes(layer.digest));
  });
});
