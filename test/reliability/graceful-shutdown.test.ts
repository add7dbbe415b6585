import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { request, Agent } from "node:http";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { FakeUpstream } from "../mirror/fake-upstream.js";
import { readFully, startMirror } from "../mirror/mirror-fixture.js";

/** A GET over a kept-alive agent, so a request can reuse a connection opened before shutdown. */
function get(agent: Agent, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { agent }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

describe("graceful shutdown", () => {
  it("turns unready, refuses new connections, lets a transfer finish within the grace period", async () => {
    const upstream = await new FakeUpstream().start();
    const berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "fake" }]);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await get(agent, `${berth.url}/readyz`)).status, 200);
      const blob = randomBytes(8 * 1024 * 1024);
      const digest = upstream.addBlob("team/app", blob);
      const transfer = fetch(`${berth.url}/v2/fake/team/app/blobs/${digest}`).then(readFully);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const closing = berth.close(5000);
      await assert.rejects(fetch(`${berth.url}/v2/`), "a new connection must be refused");
      const body = await transfer;
      assert.ok(Buffer.isBuffer(body) && body.equals(blob), "the transfer in flight completes");
      await closing;
    } finally {
      agent.destroy();
      await berth.stop().catch(() => {});
      await upstream.stop();
    }
  });

  it("answers /readyz with 503 on a connection kept open across SIGTERM", async () => {
    const upstream = await new FakeUpstream().start();
    const berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "fake", readTimeout: "30s" }]);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await get(agent, `${berth.url}/readyz`)).status, 200);
      const digest = upstream.addBlob("team/app", randomBytes(1024 * 1024));
      upstream.setFault(`/v2/team/app/blobs/${digest}`, { kind: "stall-after", sendBytes: 1000 });
      const stalled = fetch(`${berth.url}/v2/fake/team/app/blobs/${digest}`).then(readFully);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const closing = berth.close(400);
      const ready = await get(agent, `${berth.url}/readyz`);
      assert.equal(ready.status, 503);
      await closing;
      const body = await stalled;
      assert.ok(body instanceof Error || body.length < 1024 * 1024, "a transfer still running after the grace period is cut");
      assert.equal(await berth.storage.blobs.size(Digest.parse(digest)!), undefined, "no partial blob is kept");
      assert.deepEqual(await readdir(join(berth.root, "_tmp")), [], "no temp file is left");
    } finally {
      agent.destroy();
      await berth.stop().catch(() => {});
      await upstream.stop();
    }
  });
});
