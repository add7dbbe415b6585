import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { FakeUpstream } from "../mirror/fake-upstream.js";
import { Replicas } from "../support/replicas.js";

const PATH = "/v2/team/app/manifests/v1";

describe("replicas back off from a failing upstream together", () => {
  let upstream: FakeUpstream;
  let replicas: Replicas;

  before(async () => {
    // An in-process upstream: a real registry cannot be made to answer 500 on demand.
    upstream = await new FakeUpstream().start();
    replicas = await Replicas.start({ count: 3, config: { upstreams: [{ host: upstream.host, url: upstream.url, prefix: "fake" }] } });
  });
  after(async () => {
    await replicas?.close();
    await upstream?.stop();
  });

  it("contacts an upstream answering 500 once per step of the kubelet schedule, through three replicas", async () => {
    upstream.setFault(PATH, { kind: "status", status: 500 });
    const asked = () => upstream.requests.filter((r) => r.path === PATH).length;
    const first = await fetch(`${replicas.next()}/v2/fake/team/app/manifests/v1`);
    assert.equal(first.status, 503);
    await first.arrayBuffer();
    const perContact = asked();
    assert.ok(perContact > 0);
    // A storm: a request every 250 ms, spread over the replicas, past the first 10 s step.
    const start = Date.now();
    while (Date.now() - start < 13_000) {
      await delay(250);
      const response = await fetch(`${replicas.next()}/v2/fake/team/app/manifests/v1`);
      assert.equal(response.status, 503);
      assert.ok(Number(response.headers.get("retry-after")) > 0, "every refusal says when to retry");
      await response.arrayBuffer();
    }
    assert.equal(asked(), 2 * perContact, "once at the start, once when the 10 s step ended: not once per replica");
  });
});
