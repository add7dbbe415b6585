import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { pushImage } from "../support/push-image.js";
import { Replicas } from "../support/replicas.js";

const ACCEPT = { accept: "application/vnd.oci.image.manifest.v1+json" };

async function coordinationUp(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^berth_coordination_up (\d)/m.exec(text)?.[1]);
}

/** Waits until every replica reports `up` in /metrics; fails after `ms`. */
async function untilEvery(urls: string[], up: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const states = await Promise.all(urls.map(coordinationUp));
    if (states.every((state) => state === up)) return;
    if (Date.now() > deadline) assert.fail(`berth_coordination_up is ${states.join(", ")}, not ${up} on every replica`);
    await delay(100);
  }
}

/** Waits until a replica lists the tag (it learns of keys written unheard by a walk once Redis is back); fails after `ms`. */
async function untilListed(url: string, repository: string, tag: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const { tags } = (await (await fetch(`${url}/v2/${repository}/tags/list`)).json()) as { tags: string[] };
    if (tags.includes(tag)) return;
    if (Date.now() > deadline) assert.fail(`${url} lists ${tags.join(", ")}, not ${tag}, once Redis is back`);
    await delay(100);
  }
}

async function pull(url: string, repository: string, reference: string): Promise<string | number> {
  const response = await fetch(`${url}/v2/${repository}/manifests/${reference}`, { headers: ACCEPT });
  await response.arrayBuffer();
  return response.status === 200 ? response.headers.get("docker-content-digest")! : response.status;
}

describe("replicas with Redis down", () => {
  let replicas: Replicas;

  before(async () => {
    replicas = await Replicas.start({ count: 3 });
  });
  after(() => replicas?.close());

  it("keep serving pulls and pushes on their own, say so in /metrics and /ui, and coordinate again once Redis is back", async () => {
    const [a, b, c] = replicas.urls;
    await untilEvery(replicas.urls, 1, 10_000);
    const before = await pushImage(a, "team/app", "v1");

    await replicas.redis.stop();
    try {
      await untilEvery(replicas.urls, 0, 10_000);
      const ui = await (await fetch(`${b}/ui`)).text();
      assert.match(ui, /Redis unreachable: serving on this replica alone/);
      assert.equal(await pull(b, "team/app", "v1"), before.manifest, "a pull of what was pushed before");
      const during = await pushImage(c, "team/app", "v2");
      await pushImage(c, "team/app", "unheard");
      assert.equal(await pull(a, "team/app", "v2"), during.manifest, "a push while Redis is down, pulled from another replica");
      const metrics = await (await fetch(`${c}/metrics`)).text();
      assert.match(metrics, /^berth_coordination_fallbacks_total\{feature="object-index"\} [1-9]/m, "the writes the others could not be told of are counted");
    } finally {
      await replicas.redis.restart();
    }

    await untilEvery(replicas.urls, 1, 15_000);
    assert.match(await (await fetch(`${a}/ui`)).text(), /coordinating through Redis/);
    await untilListed(a, "team/app", "unheard", 10_000);
    await pull(b, "team/app", "v2");
    const moved = await pushImage(a, "team/app", "v2", undefined, { annotations: { after: "redis" } });
    assert.equal(await pull(b, "team/app", "v2"), moved.manifest, "a tag moved on one replica is followed on another once Redis is back");
  });
});
