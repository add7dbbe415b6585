import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { startMirror } from "../mirror/mirror-fixture.js";
import { skopeoCopy } from "../support/skopeo.js";
import { admissionReview, applyPatch, podSpecOf, postReview, startDockerHubOrigin, workload, type DockerHubOrigin } from "./admission-fixture.js";

type Mirror = Awaited<ReturnType<typeof startMirror>>;

const BERTH = "localhost:5000";

describe("admission webhook against a docker.io-named origin", () => {
  let hub: DockerHubOrigin;
  let berth: Mirror;
  let url: string;

  before(async () => {
    hub = await startDockerHubOrigin();
    berth = await startMirror([{ host: "docker.io", url: hub.origin.url }], { admission: { registry: BERTH } });
    url = `${berth.url}/admission`;
  });
  after(async () => {
    await berth?.stop();
    await hub?.close();
  });

  it("points a Deployment's nginx:1.25 and busybox at berth, pins both digests and writes the pull policies Kubernetes would have defaulted", async () => {
    const deployment = workload("Deployment", [
      { name: "web", image: "nginx:1.25" },
      { name: "sidecar", image: "busybox" },
    ]);
    const review = admissionReview("Deployment", deployment, { uid: "705ab4f5-6393-11e8-b7cc-42010a800002" });
    const answer = await postReview(url, review);

    assert.equal(answer.httpStatus, 200);
    assert.equal(answer.body.apiVersion, "admission.k8s.io/v1");
    assert.equal(answer.body.kind, "AdmissionReview");
    assert.equal(answer.response.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert.equal(answer.response.allowed, true);
    assert.equal(answer.response.warnings, undefined);
    const [web, sidecar] = podSpecOf(applyPatch(deployment, answer.patch), "Deployment").containers;
    assert.deepEqual(web, { name: "web", image: `${BERTH}/docker.io/library/nginx:1.25@${hub.nginx.digest}`, imagePullPolicy: "IfNotPresent" });
    assert.deepEqual(sidecar, { name: "sidecar", image: `${BERTH}/docker.io/library/busybox@${hub.busybox.digest}`, imagePullPolicy: "Always" });
  });

  it("resolves through berth's registry, so the pinned manifest is already cached when the node pulls it", async () => {
    const answer = await postReview(url, admissionReview("Pod", workload("Pod", [{ name: "web", image: "docker.io/library/nginx:1.25" }])));
    const pinned = answer.patch.find((op) => op.path === "/spec/containers/0/image")!.value as string;
    const digest = pinned.split("@")[1];
    assert.equal(digest, hub.nginx.digest, "a multi-arch tag pins its index, as a runtime's pull resolves it");
    const originRequests = (await hub.origin.accessLog()).length;
    const pulled = await fetch(`${berth.url}/v2/docker.io/library/nginx/manifests/${digest}`, { headers: { accept: hub.nginx.mediaType } });
    assert.equal(pulled.status, 200);
    assert.equal(pulled.headers.get("docker-content-digest"), digest);
    assert.equal((await hub.origin.accessLog()).length, originRequests, "berth served the manifest without asking the origin");
  });

  for (const kind of ["Pod", "PodTemplate", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob"]) {
    it(`rewrites the pod spec of a ${kind}`, async () => {
      const object = workload(kind, [{ name: "web", image: "nginx:1.25" }]);
      const answer = await postReview(url, admissionReview(kind, object));
      const [container] = podSpecOf(applyPatch(object, answer.patch), kind).containers;
      assert.equal(container.image, `${BERTH}/docker.io/library/nginx:1.25@${hub.nginx.digest}`);
      assert.equal(container.imagePullPolicy, "IfNotPresent");
    });
  }

  it("rewrites init and ephemeral containers too", async () => {
    const pod = workload("Pod", [{ name: "web", image: "nginx:1.25" }], {
      initContainers: [{ name: "init", image: "busybox:latest" }],
      ephemeralContainers: [{ name: "debug", image: "busybox", imagePullPolicy: "IfNotPresent" }],
    });
    const answer = await postReview(url, admissionReview("Pod", pod));
    const spec = podSpecOf(applyPatch(pod, answer.patch), "Pod");
    assert.deepEqual(spec.initContainers[0], { name: "init", image: `${BERTH}/docker.io/library/busybox:latest@${hub.busybox.digest}`, imagePullPolicy: "Always" });
    assert.deepEqual(spec.ephemeralContainers[0], { name: "debug", image: `${BERTH}/docker.io/library/busybox@${hub.busybox.digest}`, imagePullPolicy: "IfNotPresent" });
    assert.equal(spec.containers[0].image, `${BERTH}/docker.io/library/nginx:1.25@${hub.nginx.digest}`);
  });

  it("keeps explicit pull policies, and defaults digest references as Kubernetes does", async () => {
    const pod = workload("Pod", [
      { name: "never", image: "nginx:1.25", imagePullPolicy: "Never" },
      { name: "always", image: "nginx:1.25", imagePullPolicy: "Always" },
      { name: "digest", image: `nginx@${hub.nginx.digest}` },
      { name: "latest-digest", image: `busybox:latest@${hub.busybox.digest}` },
    ]);
    const answer = await postReview(url, admissionReview("Pod", pod));
    assert.ok(!answer.patch.some((op) => op.path.endsWith("/0/imagePullPolicy") || op.path.endsWith("/1/imagePullPolicy")), "explicit policies are not touched");
    const [never, always, digest, latestDigest] = podSpecOf(applyPatch(pod, answer.patch), "Pod").containers;
    assert.equal(never.imagePullPolicy, "Never");
    assert.equal(always.imagePullPolicy, "Always");
    assert.deepEqual(digest, { name: "digest", image: `${BERTH}/docker.io/library/nginx@${hub.nginx.digest}`, imagePullPolicy: "IfNotPresent" });
    assert.deepEqual(latestDigest, { name: "latest-digest", image: `${BERTH}/docker.io/library/busybox:latest@${hub.busybox.digest}`, imagePullPolicy: "Always" });
  });

  it("leaves images of registries berth does not mirror where they are, making only the pull policy explicit", async () => {
    const pod = workload("Pod", [
      { name: "quay", image: "quay.io/team/app:1.0" },
      { name: "private", image: "registry.example.com:8443/app" },
    ]);
    const answer = await postReview(url, admissionReview("Pod", pod));
    assert.deepEqual(answer.patch, [
      { op: "add", path: "/spec/containers/0/imagePullPolicy", value: "IfNotPresent" },
      { op: "add", path: "/spec/containers/1/imagePullPolicy", value: "Always" },
    ]);
  });

  it("pins an image that already names berth without moving it, and changes nothing on a second review", async () => {
    const deployment = workload("Deployment", [{ name: "web", image: `${BERTH}/docker.io/library/nginx:1.25` }]);
    const first = await postReview(url, admissionReview("Deployment", deployment));
    const patched = applyPatch(deployment, first.patch);
    assert.equal(podSpecOf(patched, "Deployment").containers[0].image, `${BERTH}/docker.io/library/nginx:1.25@${hub.nginx.digest}`);
    const second = await postReview(url, admissionReview("Deployment", patched, { operation: "UPDATE" }));
    assert.equal(second.response.allowed, true);
    assert.deepEqual(second.patch, [], "a pod created from an already-mutated template is left as it is");
  });

  it("on a pod's ephemeralcontainers subresource, changes only the ephemeral container being added", async () => {
    const running = workload("Pod", [{ name: "web", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }], {
      ephemeralContainers: [{ name: "debug-1", image: "busybox:1.0", imagePullPolicy: "IfNotPresent" }],
    });
    const updated = workload("Pod", [{ name: "web", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }], {
      ephemeralContainers: [
        { name: "debug-1", image: "busybox:1.0", imagePullPolicy: "IfNotPresent" },
        { name: "debug-2", image: "busybox" },
      ],
    });
    const answer = await postReview(url, admissionReview("Pod", updated, { operation: "UPDATE", subResource: "ephemeralcontainers", oldObject: running }));
    assert.deepEqual(answer.patch, [
      { op: "replace", path: "/spec/ephemeralContainers/1/image", value: `${BERTH}/docker.io/library/busybox@${hub.busybox.digest}` },
      { op: "add", path: "/spec/ephemeralContainers/1/imagePullPolicy", value: "Always" },
    ]);
  });

  it("leaves what an UPDATE may not change alone: a running pod's containers, a Job's pod template", async () => {
    const pod = workload("Pod", [{ name: "web", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }]);
    assert.deepEqual((await postReview(url, admissionReview("Pod", pod, { operation: "UPDATE", oldObject: pod }))).patch, []);
    const job = workload("Job", [{ name: "web", image: "nginx:1.25" }]);
    assert.deepEqual((await postReview(url, admissionReview("Job", job, { operation: "UPDATE", oldObject: job }))).patch, []);
    const cronJob = workload("CronJob", [{ name: "web", image: "nginx:1.25" }]);
    const before = workload("CronJob", [{ name: "web", image: "nginx:1.24" }]);
    assert.equal((await postReview(url, admissionReview("CronJob", cronJob, { operation: "UPDATE", oldObject: before }))).patch.length, 2, "a CronJob's job template may change");
  });

  describe("living with the controllers", () => {
    const owned = (object: Record<string, unknown>, kind: string) => {
      const metadata = object.metadata as Record<string, unknown>;
      metadata.ownerReferences = [{ apiVersion: kind === "CronJob" ? "batch/v1" : "apps/v1", kind, name: "web", uid: "6b6ad6b0-0000-4000-8000-000000000001", controller: true, blockOwnerDeletion: true }];
      return object;
    };

    // The Deployment controller finds its ReplicaSet by comparing templates: a ReplicaSet it owns
    // whose template equals the Deployment's once the pod-template-hash label is ignored
    // (deploymentutil.EqualIgnoreHash). A webhook that changes the ReplicaSet's copy makes them
    // differ, so the controller creates another ReplicaSet, which the webhook changes again:
    // 125 ReplicaSets in 30 s on a 1.26 control plane. The parent was admitted (and pinned)
    // itself, so its copies are left exactly as it stamped them.
    it("leaves a ReplicaSet a Deployment owns, and a Job a CronJob owns, exactly as their parent stamped them", async () => {
      const replicaSet = owned(workload("ReplicaSet", [{ name: "web", image: "nginx:1.25" }]), "Deployment");
      (replicaSet.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels["pod-template-hash"] = "5d59d67564";
      const job = owned(workload("Job", [{ name: "web", image: "busybox" }]), "CronJob");
      for (const [kind, object] of [["ReplicaSet", replicaSet], ["Job", job]] as const) {
        for (const operation of ["CREATE", "UPDATE"] as const) {
          const answer = await postReview(url, admissionReview(kind, object, { operation, ...(operation === "UPDATE" ? { oldObject: object } : {}) }));
          assert.deepEqual(answer.response, { uid: answer.response.uid, allowed: true }, `${operation} of a ${kind} its controller owns: no patch, no warning`);
        }
      }
      const ownerless = await postReview(url, admissionReview("ReplicaSet", workload("ReplicaSet", [{ name: "web", image: "nginx:1.25" }])));
      assert.equal(ownerless.patch.length, 2, "a ReplicaSet nothing owns is mutated as any workload");
    });

    it("still mutates the pods a ReplicaSet creates", async () => {
      const pod = owned(workload("Pod", [{ name: "web", image: "nginx:9.99" }]), "ReplicaSet");
      const answer = await postReview(url, admissionReview("Pod", pod));
      assert.equal(podSpecOf(applyPatch(pod, answer.patch), "Pod").containers[0].image, `${BERTH}/docker.io/library/nginx:9.99`);
    });

    it("carries a skipped workload's label into its pod template, and skips the pods that carry it", async () => {
      const deployment = workload("Deployment", [{ name: "web", image: "nginx:1.25" }]);
      (deployment.metadata as Record<string, unknown>).labels = { "berth.dev/admission": "skip" };
      const answer = await postReview(url, admissionReview("Deployment", deployment));
      assert.deepEqual(answer.patch, [{ op: "add", path: "/spec/template/metadata/labels/berth.dev~1admission", value: "skip" }], "the images are left alone; the template is labelled");
      const template = (applyPatch(deployment, answer.patch).spec as { template: { metadata: unknown; spec: unknown } }).template;
      assert.deepEqual(template.metadata, { labels: { app: "web", "berth.dev/admission": "skip" } });

      const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "web-5d59d67564-x2x8q", namespace: "default", ...(template.metadata as object) }, spec: template.spec };
      assert.deepEqual((await postReview(url, admissionReview("Pod", pod))).patch, [], "the pod the template makes is skipped, even if the objectSelector were not there");
      assert.deepEqual((await postReview(url, admissionReview("Deployment", applyPatch(deployment, answer.patch), { operation: "UPDATE", oldObject: deployment }))).patch, [], "nothing more on the next update");

      const cronJob = workload("CronJob", [{ name: "web", image: "busybox" }]);
      (cronJob.metadata as Record<string, unknown>).labels = { "berth.dev/admission": "skip" };
      delete (cronJob.spec as { jobTemplate: { spec: { template: { metadata?: unknown } } } }).jobTemplate.spec.template.metadata;
      assert.deepEqual((await postReview(url, admissionReview("CronJob", cronJob))).patch, [
        { op: "add", path: "/spec/jobTemplate/spec/template/metadata", value: { labels: { "berth.dev/admission": "skip" } } },
      ]);
    });

    it("on an UPDATE that does not change an image, re-resolves nothing: a workload admitted unpinned stays unpinned", async () => {
      const tag = `late-${Date.now()}`;
      const deployment = workload("Deployment", [{ name: "web", image: `nginx:${tag}` }]);
      const created = await postReview(url, admissionReview("Deployment", deployment));
      assert.match(created.response.warnings?.[0] ?? "", /left unpinned/, "the tag does not exist yet");
      const admitted = applyPatch(deployment, created.patch);
      assert.equal(podSpecOf(admitted, "Deployment").containers[0].image, `${BERTH}/docker.io/library/nginx:${tag}`);

      await skopeoCopy(hub.nginx.source, `docker://${hub.origin.host}/library/nginx:${tag}`, { all: true, preserveDigests: true });
      const scaled = structuredClone(admitted);
      (scaled.spec as Record<string, unknown>).replicas = 3;
      (scaled.metadata as Record<string, unknown>).annotations = { "team.example/owner": "web" };
      const updated = await postReview(url, admissionReview("Deployment", scaled, { operation: "UPDATE", oldObject: admitted }));
      assert.deepEqual(updated.response, { uid: updated.response.uid, allowed: true }, "a scale or a metadata change starts no rollout");

      const changed = structuredClone(scaled);
      podSpecOf(changed, "Deployment").containers[0].image = `nginx:${tag}`;
      podSpecOf(changed, "Deployment").containers[0].imagePullPolicy = "IfNotPresent";
      const imageChange = await postReview(url, admissionReview("Deployment", changed, { operation: "UPDATE", oldObject: scaled }));
      assert.equal(podSpecOf(applyPatch(changed, imageChange.patch), "Deployment").containers[0].image, `${BERTH}/docker.io/library/nginx:${tag}@${hub.nginx.digest}`, "an image the update changes is resolved now");
    });

    it("keeps the pin an image already has when a re-applied manifest writes it back unpinned", async () => {
      // As if the tag had moved since: the pin from the last admission is kept, not re-resolved.
      const pinned = `${BERTH}/docker.io/library/nginx:1.25@${hub.busybox.digest}`;
      const before = workload("StatefulSet", [{ name: "web", image: pinned, imagePullPolicy: "IfNotPresent" }]);
      const reapplied = workload("StatefulSet", [{ name: "web", image: "nginx:1.25", imagePullPolicy: "IfNotPresent" }]);
      const answer = await postReview(url, admissionReview("StatefulSet", reapplied, { operation: "UPDATE", oldObject: before }));
      assert.deepEqual(answer.patch, [{ op: "replace", path: "/spec/template/spec/containers/0/image", value: pinned }]);
    });
  });

  it("admits a pod whose tag cannot be resolved, through berth but unpinned, and says why in a warning", async () => {
    const pod = workload("Pod", [{ name: "web", image: "nginx:9.99" }]);
    const answer = await postReview(url, admissionReview("Pod", pod));
    assert.equal(answer.response.allowed, true);
    const [container] = podSpecOf(applyPatch(pod, answer.patch), "Pod").containers;
    assert.deepEqual(container, { name: "web", image: `${BERTH}/docker.io/library/nginx:9.99`, imagePullPolicy: "IfNotPresent" });
    assert.equal(answer.response.warnings?.length, 1);
    assert.match(answer.response.warnings![0], /container "web": cannot resolve nginx:9\.99 through berth: manifest unknown.*left unpinned/);
  });

  it("warns about an image reference it cannot parse, leaving it to Kubernetes", async () => {
    const pod = workload("Pod", [{ name: "web", image: "NGINX:1.25" }]);
    const answer = await postReview(url, admissionReview("Pod", pod));
    assert.deepEqual(answer.patch, [{ op: "add", path: "/spec/containers/0/imagePullPolicy", value: "IfNotPresent" }]);
    assert.match(answer.response.warnings![0], /container "web": invalid image reference "NGINX:1\.25": repository names must be lowercase; left as it is/);
  });

  it("leaves kube-system alone by default, and kinds without a pod spec, and deletions", async () => {
    const pod = workload("Pod", [{ name: "web", image: "nginx:1.25" }]);
    for (const review of [
      admissionReview("Pod", pod, { namespace: "kube-system" }),
      admissionReview("ConfigMap", { apiVersion: "v1", kind: "ConfigMap", data: { image: "nginx" } }),
      admissionReview("Pod", pod, { operation: "DELETE" }),
    ]) {
      const answer = await postReview(url, review);
      assert.equal(answer.httpStatus, 200);
      assert.deepEqual(answer.response, { uid: (review.request as { uid: string }).uid, allowed: true });
    }
  });

  describe("malformed reviews", () => {
    const failure = (body: Record<string, unknown>) => ({ kind: body.kind, apiVersion: body.apiVersion, status: body.status, code: body.code, reason: body.reason });

    it("answers a body that is not JSON with 400 and a Status saying so", async () => {
      const answer = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" });
      assert.equal(answer.status, 400);
      const body = (await answer.json()) as Record<string, unknown>;
      assert.deepEqual(failure(body), { kind: "Status", apiVersion: "v1", status: "Failure", code: 400, reason: "BadRequest" });
      assert.match(body.message as string, /^not an AdmissionReview: /);
    });

    const envelopes: [string, unknown, RegExp][] = [
      ["an empty body", "", /^not an AdmissionReview: the body is empty$/],
      ["a JSON array", "[]", /^not an AdmissionReview: the body is not a JSON object$/],
      ["a review without a request", { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" }, /request: /],
      ["a request without a uid", { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request: { kind: { group: "", version: "v1", kind: "Pod" }, operation: "CREATE" } }, /request\.uid: /],
      ["an admission.k8s.io/v1beta1 review", { apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview", request: { uid: "1" } }, /apiVersion: must be admission\.k8s\.io\/v1 .*not "admission\.k8s\.io\/v1beta1"/],
      ["another kind of object", { apiVersion: "admission.k8s.io/v1", kind: "Pod" }, /kind: must be AdmissionReview, not "Pod"/],
      ["an object with no apiVersion", { kind: "AdmissionReview", request: {} }, /apiVersion: must be admission\.k8s\.io\/v1 .*and it is missing/],
    ];
    for (const [what, body, message] of envelopes) {
      it(`answers ${what} with 400 and a message naming what is wrong`, async () => {
        const answer = await postReview(url, body);
        assert.equal(answer.httpStatus, 400);
        assert.equal(answer.body.kind, "Status");
        assert.equal(answer.body.code, 400);
        assert.match(answer.body.message as string, message);
      });
    }

    it("refuses, echoing the uid, a review whose object has a malformed pod spec", async () => {
      const review = admissionReview("Deployment", { kind: "Deployment", spec: { template: { spec: { containers: "nginx" } } } }, { uid: "bad-object" });
      const answer = await postReview(url, review);
      assert.equal(answer.httpStatus, 200);
      assert.deepEqual(answer.response, {
        uid: "bad-object",
        allowed: false,
        status: { code: 400, reason: "BadRequest", message: "berth: request.object.spec.template.spec.containers is not a list" },
      });
    });

    it("answers other methods than POST with 405", async () => {
      const answer = await fetch(url);
      assert.equal(answer.status, 405);
      assert.equal(answer.headers.get("allow"), "POST");
    });
  });
});

describe("admission webhook options", () => {
  let hub: DockerHubOrigin;
  let hanging: Server;
  const berths: Mirror[] = [];
  const start = async (admission: Record<string, unknown>, upstreams?: Record<string, unknown>[]) => {
    const berth = await startMirror(upstreams ?? [{ host: "docker.io", url: hub.origin.url }], { admission });
    berths.push(berth);
    return `${berth.url}/admission`;
  };

  before(async () => {
    hub = await startDockerHubOrigin();
    // An upstream that accepts connections and never answers.
    hanging = createServer(() => undefined);
    await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve));
  });
  after(async () => {
    for (const berth of berths) await berth.stop();
    hanging?.closeAllConnections();
    hanging?.close();
    await hub?.close();
  });

  it("with rewriteImages off, pins the image where it is, keeping the tag as written", async () => {
    const url = await start({ rewriteImages: false });
    const pod = workload("Pod", [{ name: "web", image: "nginx:1.25" }]);
    const [container] = podSpecOf(applyPatch(pod, (await postReview(url, admissionReview("Pod", pod))).patch), "Pod").containers;
    assert.deepEqual(container, { name: "web", image: `nginx:1.25@${hub.nginx.digest}`, imagePullPolicy: "IfNotPresent" });
  });

  it("with pinDigests off, only moves images to berth", async () => {
    const url = await start({ registry: BERTH, pinDigests: false });
    const pod = workload("Pod", [{ name: "web", image: "nginx:9.99" }]);
    const answer = await postReview(url, admissionReview("Pod", pod));
    assert.equal(answer.response.warnings, undefined, "nothing is resolved, so nothing can fail");
    assert.equal(podSpecOf(applyPatch(pod, answer.patch), "Pod").containers[0].image, `${BERTH}/docker.io/library/nginx:9.99`);
  });

  it("leaves namespaces and images matching the exclusion globs untouched", async () => {
    const url = await start({ registry: BERTH, excludeNamespaces: ["team-*"], excludeImages: ["docker.io/library/busy*", "quay.io/**"] });
    const pod = workload("Pod", [
      { name: "web", image: "nginx:1.25" },
      { name: "sidecar", image: "busybox" },
      { name: "quay", image: "quay.io/org/team/app:1" },
    ]);
    assert.deepEqual((await postReview(url, admissionReview("Pod", pod, { namespace: "team-a" }))).patch, []);
    const answer = await postReview(url, admissionReview("Pod", pod, { namespace: "kube-system" }));
    assert.deepEqual(
      answer.patch.map((op) => op.path),
      ["/spec/containers/0/image", "/spec/containers/0/imagePullPolicy"],
      "kube-system is no longer excluded once excludeNamespaces is set; busybox and quay.io images are",
    );
  });

  it("with failurePolicy Fail, refuses a pod whose tag cannot be resolved, and admits one whose tags all resolve", async () => {
    const url = await start({ registry: BERTH, failurePolicy: "Fail" });
    const refused = await postReview(url, admissionReview("Pod", workload("Pod", [{ name: "web", image: "nginx:1.25" }, { name: "gone", image: "busybox:0.1" }]), { uid: "u-1" }));
    assert.equal(refused.response.uid, "u-1");
    assert.equal(refused.response.allowed, false);
    assert.equal(refused.response.status?.code, 403);
    assert.match(refused.response.status!.message, /container "gone": cannot resolve busybox:0\.1 through berth: manifest unknown.*failurePolicy: Fail/);
    const admitted = await postReview(url, admissionReview("Pod", workload("Pod", [{ name: "web", image: "nginx:1.25" }])));
    assert.equal(admitted.response.allowed, true);
    assert.equal(admitted.patch.length, 2);
  });

  it("gives up on a tag after resolveTimeout and admits the pod unpinned, with a warning", async () => {
    const host = `127.0.0.1:${(hanging.address() as AddressInfo).port}`;
    const url = await start({ registry: BERTH, resolveTimeout: "300ms" }, [{ host: "slow.example", url: `http://${host}`, prefix: "slow", readTimeout: "1s" }]);
    const pod = workload("Pod", [{ name: "web", image: "slow.example/team/app:v1" }]);
    const answer = await postReview(url, admissionReview("Pod", pod));
    assert.equal(answer.response.allowed, true);
    assert.equal(podSpecOf(applyPatch(pod, answer.patch), "Pod").containers[0].image, `${BERTH}/slow/team/app:v1`);
    assert.match(answer.response.warnings![0], /cannot resolve slow\.example\/team\/app:v1 through berth: no answer within 0\.3s; left unpinned/);
  });
});
