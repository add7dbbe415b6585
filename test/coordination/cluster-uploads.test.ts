import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { Replicas } from "../support/replicas.js";

const MiB = 1024 * 1024;
const REPO = "team/app";

describe("uploads across three replicas (no sticky sessions)", () => {
  let replicas: Replicas;
  let a: string, b: string, c: string;

  before(async () => {
    replicas = await Replicas.start({ count: 3 });
    [a, b, c] = replicas.urls;
  });
  after(() => replicas?.close());

  /** POST on `replica`: the session's path. */
  const start = async (replica: string): Promise<string> => {
    const res = await fetch(`${replica}/v2/${REPO}/blobs/uploads/`, { method: "POST" });
    assert.equal(res.status, 202, await res.text());
    return res.headers.get("location")!;
  };
  /** A chunk with its Content-Range; a streamed one is STREAMED bytes long. */
  const patch = (replica: string, session: string, offset: number, body: Buffer | ReadableStream<Uint8Array>) =>
    fetch(`${replica}${session}`, {
      method: "PATCH",
      body: body instanceof Buffer ? new Uint8Array(body) : body,
      duplex: "half",
      headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${offset + (body instanceof Buffer ? body.length : STREAMED) - 1}` },
    } as RequestInit);
  const put = (replica: string, session: string, digest: Digest, body?: Buffer) =>
    fetch(`${replica}${session}?digest=${digest}`, { method: "PUT", ...(body ? { body: new Uint8Array(body), headers: { "content-type": "application/octet-stream" } } : {}) });
  const status = async (replica: string, session: string) => {
    const res = await fetch(`${replica}${session}`);
    assert.equal(res.status, 204, await res.text());
    return res.headers.get("range");
  };
  /** The blob as every replica serves it. */
  const assertServed = async (digest: Digest, bytes: Buffer) => {
    for (const [i, url] of replicas.urls.entries()) {
      if (!replicas.members[i].running) continue;
      const res = await fetch(`${url}/v2/${REPO}/blobs/${digest}`);
      assert.equal(res.status, 200, url);
      const got = Buffer.from(await res.arrayBuffer());
      assert.equal(got.length, bytes.length, url);
      assert.ok(Digest.of("sha256", got).equals(digest), `${url} served other bytes`);
    }
  };

  it("completes a blob whose chunks, under and over 5 MiB, hop replicas: POST on A, PATCH on B, C, A, PUT with the last chunk on B", async () => {
    const blob = randomBytes(12 * MiB + 12345);
    const digest = Digest.of("sha256", blob);
    const cuts = [0, 1 * MiB, 8 * MiB + 7, 11 * MiB, blob.length];
    const session = await start(a);
    const hops = [b, c, a];
    for (const [i, replica] of hops.entries()) {
      const res = await patch(replica, session, cuts[i], blob.subarray(cuts[i], cuts[i + 1]));
      assert.equal(res.status, 202, await res.text());
      assert.equal(res.headers.get("range"), `0-${cuts[i + 1] - 1}`);
      // Every replica sees the session where the last chunk left it.
      for (const other of replicas.urls) assert.equal(await status(other, session), `0-${cuts[i + 1] - 1}`);
    }
    const res = await put(b, session, digest, blob.subarray(cuts[3]));
    assert.equal(res.status, 201, await res.text());
    await assertServed(digest, blob);
  });

  it("completes a 0-byte blob started on one replica on another", async () => {
    const empty = Buffer.alloc(0);
    const digest = Digest.of("sha256", empty);
    const session = await start(c);
    const res = await put(a, session, digest);
    assert.equal(res.status, 201, await res.text());
    await assertServed(digest, empty);
  });

  it("completes a monolithic PUT (the whole blob in the completing request) on another replica than the POST", async () => {
    const blob = randomBytes(6 * MiB + 3);
    const digest = Digest.of("sha256", blob);
    const session = await start(b);
    const res = await put(c, session, digest, blob);
    assert.equal(res.status, 201, await res.text());
    await assertServed(digest, blob);
  });

  it("refuses, on another replica, a digest the chunks received elsewhere do not hash to", async () => {
    const blob = randomBytes(2 * MiB);
    const session = await start(a);
    assert.equal((await patch(b, session, 0, blob)).status, 202);
    const wrong = Digest.of("sha256", randomBytes(16));
    const res = await put(c, session, wrong);
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { errors: { code: string }[] }).errors[0].code, "DIGEST_INVALID");
    assert.equal((await fetch(`${a}/v2/${REPO}/blobs/${wrong}`, { method: "HEAD" })).status, 404);
  });

  it("runs two concurrent PATCHes of one session on two replicas one after the other: one is taken, the other gets 416 with the session's Range", async () => {
    const first = randomBytes(STREAMED);
    const second = randomBytes(STREAMED);
    const session = await start(a);
    const slow = patch(b, session, 0, streamOf(first, 400 * 1024, 100));
    await delay(300);
    const fast = patch(c, session, 0, second);
    const answers = await Promise.all([slow, fast].map(async (pending) => {
      const res = await pending;
      return { status: res.status, range: res.headers.get("range"), body: await res.text() };
    }));
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [202, 416], JSON.stringify(answers));
    const [winner, loser] = answers[0].status === 202 ? [first, answers[1]] : [second, answers[0]];
    assert.equal(loser.range, `0-${STREAMED - 1}`);
    assert.equal((JSON.parse(loser.body) as { errors: { code: string }[] }).errors[0].code, "RANGE_INVALID");
    const digest = Digest.of("sha256", winner);
    const res = await put(a, session, digest);
    assert.equal(res.status, 201, await res.text());
    await assertServed(digest, winner);
  });

  it("leaves a session whose replica is killed mid-chunk at its last complete chunk; another replica takes the rest", async () => {
    const blob = randomBytes(2 * MiB + STREAMED);
    const digest = Digest.of("sha256", blob);
    const session = await start(a);
    assert.equal((await patch(b, session, 0, blob.subarray(0, 2 * MiB))).status, 202);
    // C receives 3 MiB of a 6 MiB chunk (a part's worth is on its way to S3), then dies.
    let sent = 0;
    const cut = patch(c, session, 2 * MiB, new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= 3 * MiB) return new Promise<void>(() => {});
        controller.enqueue(blob.subarray(2 * MiB + sent, 2 * MiB + sent + MiB));
        sent += MiB;
      },
    })).catch((err: Error) => err);
    while (sent < 3 * MiB) await delay(20);
    await delay(500);
    await replicas.members[2].kill();
    assert.ok((await cut) instanceof Error);
    assert.equal(await status(a, session), `0-${2 * MiB - 1}`);
    const ahead = await patch(b, session, 3 * MiB, blob.subarray(3 * MiB, 4 * MiB));
    assert.equal(ahead.status, 416);
    assert.equal(ahead.headers.get("range"), `0-${2 * MiB - 1}`);
    // Waits for the dead replica's lease on the session to expire, then continues where it was.
    const rest = await patch(a, session, 2 * MiB, blob.subarray(2 * MiB));
    assert.equal(rest.status, 202, await rest.text());
    const res = await put(b, session, digest);
    assert.equal(res.status, 201, await res.text());
    await assertServed(digest, blob);
  });

  it("with Redis stopped, still takes a session's chunks on any replica (each replica ordering its own) and completes it once Redis is back", async () => {
    const blob = randomBytes(6 * MiB + 5);
    const digest = Digest.of("sha256", blob);
    const session = await start(a);
    await replicas.redis.stop();
    try {
      assert.equal((await patch(b, session, 0, blob.subarray(0, MiB))).status, 202);
      assert.equal((await patch(a, session, MiB, blob.subarray(MiB, 6 * MiB))).status, 202);
    } finally {
      await replicas.redis.restart();
    }
    await delay(1500); // the replicas reconnect
    const res = await put(b, session, digest, blob.subarray(6 * MiB));
    assert.equal(res.status, 201, await res.text());
    await assertServed(digest, blob);
  });
});

/** The streamed chunk's length in the tests that stream one. */
const STREAMED = 6 * MiB;

/** `bytes` as a request body sent `step` bytes every `everyMs`. */
function streamOf(bytes: Buffer, step: number, everyMs: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (at >= bytes.length) return controller.close();
      if (at > 0) await delay(everyMs);
      controller.enqueue(bytes.subarray(at, at + step));
      at += step;
    },
  });
}
