import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { PassThrough } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { InternalListener } from "../../server/http/internal-listener.js";
import { createLogger } from "../../server/log.js";
import { Digest } from "../../server/reference/digest.js";
import { BlobFills } from "../../server/registry/blob-fill.js";
import { fillPath } from "../../server/registry/fill-peers.js";
import { openTestStorage, testStorageDriver } from "../support/storage-drivers.js";

const SECRET = randomBytes(24).toString("hex");
const SOURCE = "origin.example/team/app";

describe("a replica's internal port", () => {
  const content = randomBytes(3 * 1024 * 1024 + 321);
  const digest = Digest.of("sha256", content);
  let store: Awaited<ReturnType<typeof openTestStorage>>;
  let listener: InternalListener;
  let body: PassThrough;

  before(async () => {
    store = await openTestStorage(testStorageDriver());
    const fills = new BlobFills(store.storage.driver, store.storage.blobs);
    body = new PassThrough();
    fills.join(digest, SOURCE, {
      fetch: async () => ({ size: content.length, body, anonymous: true }),
      onStored: async () => {},
      onFailed: () => {},
    });
    listener = await InternalListener.start({ listen: "127.0.0.1:0", secret: SECRET }, createLogger("silent"));
    listener.serve({ served: (asked, source) => fills.get(asked, source) });
  });
  after(async () => {
    body.end();
    await listener?.close();
    await store?.close();
  });

  const ask = (path: string, headers: Record<string, string> = {}) => fetch(new URL(path, listener.url), { headers });

  it("refuses a request without the replicas' shared secret, or with another", async () => {
    for (const authorization of [undefined, `Bearer ${SECRET.slice(1)}`, `Bearer ${SECRET}x`, SECRET, `Basic ${Buffer.from(`berth:${SECRET}`).toString("base64")}`]) {
      const answer = await ask(`${fillPath(digest, SOURCE)}/state`, authorization ? { authorization } : {});
      assert.equal(answer.status, 401, String(authorization));
      assert.doesNotMatch(await answer.text(), new RegExp(SECRET.slice(0, 8)));
    }
  });

  it("answers 404 for a fill it does not lead, and for anything but a fill", async () => {
    const other = Digest.of("sha256", "another blob");
    for (const path of [fillPath(other, SOURCE), fillPath(digest, "origin.example/team/other"), "/v2/", "/internal/fills"]) {
      assert.equal((await ask(path, { authorization: `Bearer ${SECRET}` })).status, 404, path);
    }
  });

  it("streams a fill in flight, a Range of it included, and holds the blob's last byte until the digest verified", async () => {
    const authorization = `Bearer ${SECRET}`;
    const state = await ask(`${fillPath(digest, SOURCE)}/state`, { authorization });
    assert.equal(state.status, 200);
    assert.deepEqual(await state.json(), { size: content.length, state: "fetching" });

    const whole = await ask(fillPath(digest, SOURCE), { authorization });
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get("content-length"), String(content.length));
    const received: Buffer[] = [];
    let length = 0;
    const reading = (async () => {
      for await (const chunk of whole.body as unknown as AsyncIterable<Uint8Array>) {
        received.push(Buffer.from(chunk));
        length += chunk.length;
      }
    })();
    body.write(content);
    const range = await ask(fillPath(digest, SOURCE), { authorization, range: "bytes=1000-200999" });
    assert.equal(range.status, 206);
    assert.equal(range.headers.get("content-range"), `bytes 1000-200999/${content.length}`);
    assert.ok(Buffer.from(await range.arrayBuffer()).equals(content.subarray(1000, 201000)));
    while (length < content.length - 1) await delay(10);
    await delay(200);
    assert.equal(length, content.length - 1, "every byte but the last before the upstream's body ended");

    body.end();
    await reading;
    assert.ok(Buffer.concat(received).equals(content));
  });
});
