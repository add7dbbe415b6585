import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startMirror } from "../mirror/mirror-fixture.js";
import { buildImage, type BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { admissionReview, applyPatch, podSpecOf, workload, type PatchOperation } from "./admission-fixture.js";
import { selfSigned } from "./tls-fixture.js";

/** POSTs a review to the webhook's HTTPS listener, trusting `ca`; returns the response and its decoded patch. */
function review(url: string, body: unknown, ca: Buffer): Promise<{ response: { allowed: boolean; warnings?: string[] }; patch: PatchOperation[] }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/admission`, { method: "POST", ca, headers: { "content-type": "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const response = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { response: { allowed: boolean; warnings?: string[]; patch?: string } }).response;
        resolve({ response, patch: response.patch ? (JSON.parse(Buffer.from(response.patch, "base64").toString("utf8")) as PatchOperation[]) : [] });
      });
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("the webhook resolves tags as the pod's tenant", () => {
  let dir: TempDir;
  let privateOrigin: OriginRegistry;
  let publicOrigin: OriginRegistry;
  let app: BuiltImage;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  let ca: Buffer;

  before(async () => {
    dir = await makeTempDir("admission-tenants");
    privateOrigin = await OriginRegistry.start({ auth: { kind: "htpasswd", users: { owner: "owner-secret" } } });
    publicOrigin = await OriginRegistry.start();
    app = await buildImage(join(dir.path, "layout"), { ref: "app" });
    await skopeoCopy(app.source, `docker://${privateOrigin.host}/team/app:v1`, { preserveDigests: true, destCreds: "owner:owner-secret" });
    await skopeoCopy(app.source, `docker://${publicOrigin.host}/library/tool:v1`, { preserveDigests: true });
    // Only team-a holds credentials for the private registry; berth itself holds none.
    const credentials = join(dir.path, "team-a.json");
    await writeFile(credentials, JSON.stringify({ auths: { [privateOrigin.host]: { auth: Buffer.from("owner:owner-secret").toString("base64") } } }));
    const tls = await selfSigned(dir.path, "berth-webhook");
    ca = await readFile(tls.cert);
    berth = await startMirror(
      [
        { host: privateOrigin.host, url: privateOrigin.url, prefix: "private" },
        { host: publicOrigin.host, url: publicOrigin.url, prefix: "public" },
      ],
      {
        auth: {
          mode: "token",
          // Pods may pull from the private registry only; nothing grants the public one.
          policy: [{ roles: ["serviceaccount"], repositories: ["private/**"], actions: ["pull"] }],
        },
        tenants: [{ name: "team-a", credentials: [credentials] }],
        admission: {
          listen: "127.0.0.1:0",
          tlsCertFile: tls.cert,
          tlsKeyFile: tls.key,
          registry: "localhost:5000",
          namespaceTenants: [{ namespaces: ["team-a-*"], tenant: "team-a" }],
        },
      },
    );
  });
  after(async () => {
    await berth?.stop();
    await privateOrigin?.close();
    await publicOrigin?.close();
    await dir?.remove();
  });

  const imageAfter = async (namespace: string, image: string, serviceAccountName?: string) => {
    const pod = workload("Pod", [{ name: "web", image }]);
    if (serviceAccountName) (pod.spec as Record<string, unknown>).serviceAccountName = serviceAccountName;
    const answer = await review(berth.admissionUrl!, admissionReview("Pod", pod, { namespace }), ca);
    return { image: podSpecOf(applyPatch(pod, answer.patch), "Pod").containers[0].image as string, warnings: answer.response.warnings ?? [] };
  };

  it("pins a private image for a pod of the tenant whose credentials reach it", async () => {
    const { image, warnings } = await imageAfter("team-a", `${privateOrigin.host}/team/app:v1`, "builder");
    assert.deepEqual(warnings, []);
    assert.equal(image, `localhost:5000/private/team/app:v1@${app.digest}`);
  });

  it("maps namespaces to tenants with namespaceTenants", async () => {
    assert.equal((await imageAfter("team-a-dev", `${privateOrigin.host}/team/app:v1`)).image, `localhost:5000/private/team/app:v1@${app.digest}`);
  });

  it("leaves a pod of another tenant unpinned, with a warning that names no digest", async () => {
    const { image, warnings } = await imageAfter("team-b", `${privateOrigin.host}/team/app:v1`);
    assert.equal(image, "localhost:5000/private/team/app:v1");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /cannot resolve .*team\/app:v1 through berth: .*left unpinned/);
    assert.ok(!warnings[0].includes("sha256:"), warnings[0]);
  });

  it("resolves nothing that auth.policy does not let the pod's service account pull", async () => {
    const asked = (await publicOrigin.accessLog()).length;
    const { image, warnings } = await imageAfter("team-a", `${publicOrigin.host}/library/tool:v1`);
    assert.equal(image, "localhost:5000/public/library/tool:v1");
    assert.deepEqual(warnings, [`berth: container "web": cannot resolve ${publicOrigin.host}/library/tool:v1 through berth: system:serviceaccount:team-a:default may not pull public/library/tool (auth.policy); left unpinned`]);
    assert.equal((await publicOrigin.accessLog()).length, asked, "the upstream was not asked");
  });
});
