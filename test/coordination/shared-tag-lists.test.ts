import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { OriginRegistry } from "../support/origin-registry.js";
import { pushImage } from "../support/push-image.js";
import { Replicas } from "../support/replicas.js";

describe("replicas share the upstream tag lists they fetch", () => {
  let origin: OriginRegistry;
  let replicas: Replicas;

  before(async () => {
    origin = await OriginRegistry.start();
    replicas = await Replicas.start({ count: 3, config: { upstreams: [{ host: origin.host, url: origin.url, prefix: "origin" }] } });
  });
  after(async () => {
    await replicas?.close();
    await origin?.close();
  });

  it("lists an upstream repository's tags at the origin once for the three replicas", async () => {
    await pushImage(origin.url, "team/app", "v1");
    await pushImage(origin.url, "team/app", "v2");
    for (const url of [...replicas.urls, ...replicas.urls]) {
      const response = await fetch(`${url}/v2/origin/team/app/tags/list`);
      assert.equal(response.status, 200, url);
      assert.deepEqual(((await response.json()) as { tags: string[] }).tags, ["v1", "v2"], url);
    }
    assert.equal(await origin.count("GET", "/v2/team/app/tags/list"), 1, "one origin listing serves every replica");
  });
});
