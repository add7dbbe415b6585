import assert from "node:assert/strict";
import { request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { startMirror } from "../mirror/mirror-fixture.js";
import { LyingUpstream } from "../reliability/lying-upstream.js";

/** The kubelet's ImagePullBackOff schedule berth follows: 10 s, doubling, capped at 300 s. */
function contactsAllowed(elapsedMs: number): number {
  let contacts = 0;
  for (let at = 0, delay = 10_000; at <= elapsedMs; at += delay, delay = Math.min(delay * 2, 300_000)) contacts++;
  return contacts;
}

function status(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    })
      .on("error", reject)
      .end();
  });
}

describe("a 5xx storm over the whole backoff schedule", () => {
  it("contacts a failing upstream only at 0, 10, 30 and 70 s while clients keep asking every 100 ms for 75 s", async (t) => {
    const upstream = await new LyingUpstream().start();
    const berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "storm" }], { cache: { collectInterval: 0 } });
    try {
      const path = "/v2/team/app/manifests/v1";
      upstream.set(path, { kind: "status", status: 500 });
      const started = Date.now();
      let requests = 0;
      while (Date.now() - started < 75_000) {
        assert.equal(await status(`${berth.url}/v2/storm/team/app/manifests/v1`), 503);
        requests++;
        await sleep(100);
      }
      const elapsed = Date.now() - started;
      const contacts = upstream.count(path);
      t.diagnostic(`${requests} requests in ${elapsed} ms, ${contacts} upstream contacts (schedule allows ${contactsAllowed(elapsed)})`);
      assert.ok(contacts <= contactsAllowed(elapsed), `${contacts} contacts`);
      assert.ok(contacts >= 3, `the upstream is retried as each backoff ends (${contacts} contacts)`);
    } finally {
      await berth.stop();
      await upstream.stop();
    }
  });
});
