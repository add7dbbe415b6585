import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { OriginRegistry } from "../support/origin-registry.js";
import { pushImage } from "../support/push-image.js";
import { admissionReview, applyPatch, podSpecOf, postReview } from "../admission/admission-fixture.js";
import { ask, originRequests, PREFIX, startNode, startParent, type RunningBerth } from "./tier-fixture.js";

describe("the admission webhook with tiers", () => {
  let origin: OriginRegistry;
  let parent: RunningBerth;
  let webhook: RunningBerth;
  let node: RunningBerth;
  let image: Awaited<ReturnType<typeof pushImage>>;

  before(async () => {
    origin = await OriginRegistry.start();
    image = await pushImage(origin.url, "team/web", "v1");
    parent = await startParent(origin);
    // The node tier's config, webhook included: what it rewrites to is what the nodes serve.
    webhook = await startNode(parent, origin.host, {}, { admission: { registry: "localhost:5000" } });
    node = await startNode(parent, origin.host);
  });
  after(async () => {
    await node?.stop();
    await webhook?.stop();
    await parent?.stop();
    await origin?.close();
  });

  it("rewrites an image to the node tier's prefix, pinned to the digest it resolved through the cluster tier, which the node then serves: one origin GET per object", async () => {
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "web" }, spec: { containers: [{ name: "web", image: `${origin.host}/team/web:v1` }] } };
    const answer = await postReview(`${webhook.url}/admission`, admissionReview("Pod", pod));
    const [container] = podSpecOf(applyPatch(pod, answer.patch), "Pod").containers;
    assert.equal(container.image, `localhost:5000/${PREFIX}/team/web:v1@${image.manifest}`);

    const path = `${PREFIX}/team/web`;
    assert.equal((await ask(node, "GET", `${path}/manifests/${image.manifest}`)).status, 200);
    for (const blob of [image.config, image.layer]) assert.equal((await ask(node, "GET", `${path}/blobs/${blob}`)).status, 200);
    const requests = await originRequests(origin, "team/web");
    assert.deepEqual(
      requests.filter((r) => r.startsWith("GET ")).sort(),
      [`GET /v2/team/web/blobs/${image.config} 200`, `GET /v2/team/web/blobs/${image.layer} 200`, `GET /v2/team/web/manifests/${image.manifest} 200`].sort(),
    );
  });
});
