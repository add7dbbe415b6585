import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { Replicas } from "../support/replicas.js";

describe("three replicas on one bucket and one Redis", () => {
  let replicas: Replicas;

  before(async () => {
    replicas = await Replicas.start({ count: 3 });
  });
  after(() => replicas?.close());

  it("start, each answering /v2/ and ready", async () => {
    for (const url of replicas.urls) {
      assert.equal((await fetch(`${url}/v2/`)).status, 200);
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
    }
  });

  it("serve a blob pushed through one of them from every other", async () => {
    const bytes = randomBytes(64 * 1024);
    const digest = Digest.of("sha256", bytes).toString();
    const pushed = await fetch(`${replicas.urls[0]}/v2/team/app/blobs/uploads/?digest=${digest}`, { method: "POST", body: new Uint8Array(bytes), headers: { "content-type": "application/octet-stream" } });
    assert.equal(pushed.status, 201);
    for (const url of replicas.urls.slice(1)) {
      const pulled = await fetch(`${url}/v2/team/app/blobs/${digest}`);
      assert.equal(pulled.status, 200, url);
      assert.ok(bytes.equals(Buffer.from(await pulled.arrayBuffer())));
    }
  });
});
