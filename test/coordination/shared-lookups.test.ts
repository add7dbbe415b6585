import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { LinkLimiter } from "../../bench/link-limiter.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { pushImage } from "../support/push-image.js";
import { Replicas } from "../support/replicas.js";

const ACCEPT = { accept: "application/vnd.oci.image.manifest.v1+json" };

describe("replicas coalesce manifest lookups across the cluster", () => {
  let origin: OriginRegistry;
  let link: LinkLimiter;
  let replicas: Replicas;

  before(async () => {
    origin = await OriginRegistry.start();
    // A far origin: the manifest below takes about a second to arrive, so every replica asks while one fetches.
    link = await LinkLimiter.start(origin, 64 * 1024);
    replicas = await Replicas.start({ count: 3, config: { upstreams: [{ host: origin.host, url: `http://${link.host}`, prefix: "origin" }] } });
  });
  after(async () => {
    await replicas?.close();
    await link?.close();
    await origin?.close();
  });

  it("asks the origin once for a tag nine clients over three replicas pull at once", async () => {
    const pushed = await pushImage(origin.url, "team/app", "v1", undefined, { annotations: { padding: "x".repeat(64 * 1024) } });
    const pulls = await Promise.all(
      Array.from({ length: 9 }, async (_, i) => {
        const response = await fetch(`${replicas.urls[i % 3]}/v2/origin/team/app/manifests/v1`, { headers: ACCEPT });
        await response.arrayBuffer();
        return [response.status, response.headers.get("docker-content-digest")];
      }),
    );
    for (const pull of pulls) assert.deepEqual(pull, [200, pushed.manifest]);
    const asked = (await origin.accessLog()).filter((entry) => entry.method !== "PUT" && entry.path.startsWith("/v2/team/app/manifests/"));
    assert.deepEqual(
      asked.map((entry) => entry.method).sort(),
      ["GET", "HEAD"],
      "one HEAD of the tag and one GET of its manifest for the whole cluster",
    );
  });
});
