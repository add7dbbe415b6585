import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { FakeUpstream } from "../mirror/fake-upstream.js";
import { startMirror } from "../mirror/mirror-fixture.js";

const KiB = 1024;
const REPOSITORY = "slow/uploads";
/** Every limit berth has on a client, at a second, so that a test's 5 s transfer outlasts each of them five times over. */
const LIMITS = { idleTimeout: "1s", headersTimeout: "1s" };

const sha256 = (bytes: Buffer) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** A raw connection on which a test writes a request byte by byte, and what came back on it. */
class RawConnection {
  readonly socket: Socket;
  private readonly received: Buffer[] = [];
  readonly closed: Promise<Buffer>;

  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.on("data", (chunk: Buffer) => this.received.push(chunk));
    this.closed = new Promise((resolve) => {
      this.socket.on("error", () => {});
      this.socket.on("close", () => resolve(Buffer.concat(this.received)));
    });
  }

  head(method: string, target: string, headers: Record<string, string | number>): void {
    const lines = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`), "", ""];
    this.socket.write(lines.join("\r\n"));
  }

  /** The connection's close, or a failure naming what did not happen within `ms`. */
  async closedWithin(ms: number, what: string): Promise<Buffer> {
    const timer = delay(ms).then(() => Promise.reject(new Error(`${what} within ${ms} ms`)));
    timer.catch(() => {});
    return Promise.race([this.closed, timer]);
  }
}

describe("slow and stalled clients", () => {
  let upstream: FakeUpstream;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  let port: number;

  before(async () => {
    upstream = await new FakeUpstream().start();
    berth = await startMirror([{ host: upstream.host, url: upstream.url, prefix: "fake", readTimeout: "3s" }], { http: LIMITS });
    port = Number(new URL(berth.url).port);
  });
  after(async () => {
    await berth?.stop();
    await upstream?.stop();
  });

  const startSession = async (): Promise<string> => {
    const res = await fetch(`${berth.url}/v2/${REPOSITORY}/blobs/uploads/`, { method: "POST" });
    assert.equal(res.status, 202);
    return res.headers.get("location")!;
  };
  const rangeOf = async (location: string): Promise<string> => {
    const res = await fetch(`${berth.url}${location}`);
    assert.equal(res.status, 204);
    return res.headers.get("range")!;
  };
  /** The session's Range once it has moved from `before`: a cut chunk is placed just after its connection is gone. */
  const rangeOnceMoved = async (location: string, before: string): Promise<string> => {
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await delay(20)) {
      const range = await rangeOf(location);
      if (range !== before) return range;
    }
    return before;
  };
  /** Sends the rest from where the session's Range says, completes, and checks berth serves the blob whole. */
  const resumeAndComplete = async (location: string, data: Buffer): Promise<void> => {
    const from = Number(/^0-(\d+)$/.exec(await rangeOf(location))![1]) + 1;
    const rest = data.subarray(from);
    const patched = await fetch(`${berth.url}${location}`, {
      method: "PATCH",
      headers: { "content-type": "application/octet-stream", "content-range": `${from}-${data.length - 1}` },
      body: new Uint8Array(rest),
    });
    assert.equal(patched.status, 202);
    assert.equal(patched.headers.get("range"), `0-${data.length - 1}`);
    const put = await fetch(`${berth.url}${location}?digest=${sha256(data)}`, { method: "PUT" });
    assert.equal(put.status, 201);
    const pulled = Buffer.from(await (await fetch(`${berth.url}/v2/${REPOSITORY}/blobs/${sha256(data)}`)).arrayBuffer());
    assert.ok(pulled.equals(data), "the resumed upload is served whole");
  };

  it("cuts a PATCH whose body stops arriving for idleTimeout, keeping what arrived: the client resumes from Range", async () => {
    const data = randomBytes(256 * KiB);
    const location = await startSession();
    const connection = new RawConnection(port);
    connection.head("PATCH", location, { "Content-Type": "application/octet-stream", "Content-Range": `0-${data.length - 1}`, "Content-Length": data.length });
    connection.socket.write(data.subarray(0, 100 * KiB));
    await connection.closedWithin(10_000, "berth did not cut the stalled upload");
    assert.equal(await rangeOnceMoved(location, "0-0"), `0-${100 * KiB - 1}`);
    assert.deepEqual(await readdir(join(berth.root, "_tmp")), []);
    await resumeAndComplete(location, data);
  });

  it("never cuts a body that keeps moving, however long it takes, and keeps what it delivered when its client goes away", async () => {
    assert.equal(berth.server.requestTimeout, 0, "Node's limit on a whole request (300 s by default) is off");
    const data = randomBytes(512 * KiB);
    const location = await startSession();
    const connection = new RawConnection(port);
    connection.head("PATCH", location, { "Content-Type": "application/octet-stream", "Content-Range": `0-${data.length - 1}`, "Content-Length": data.length });
    const piece = 8 * KiB;
    let sent = 0;
    const started = Date.now();
    while (Date.now() - started < 5_000) {
      connection.socket.write(data.subarray(sent, sent + piece));
      sent += piece;
      await delay(250);
    }
    assert.ok(!connection.socket.destroyed, "berth kept the slow upload's connection open");
    connection.socket.destroy();
    assert.equal(await rangeOnceMoved(location, "0-0"), `0-${sent - 1}`);
    await resumeAndComplete(location, data);
  });

  it("does not cut a PATCH that waits, body sent, for another PATCH to the same session", async () => {
    const first = randomBytes(64 * KiB);
    const second = randomBytes(64 * KiB);
    const location = await startSession();
    const slow = new RawConnection(port);
    slow.head("PATCH", location, { "Content-Type": "application/octet-stream", "Content-Length": first.length, Connection: "close" });
    await delay(100); // the slow PATCH takes the session first
    const queued = fetch(`${berth.url}${location}`, { method: "PATCH", headers: { "content-type": "application/octet-stream" }, body: new Uint8Array(second) });
    for (let sent = 0; sent < first.length; sent += 4 * KiB) {
      slow.socket.write(first.subarray(sent, sent + 4 * KiB));
      await delay(200);
    }
    const answer = (await slow.closedWithin(10_000, "the slow PATCH was not answered")).toString("latin1");
    assert.match(answer, /^HTTP\/1\.1 202/);
    const res = await queued;
    assert.equal(res.status, 202, "the queued PATCH was kept waiting, not cut as idle");
    assert.equal(res.headers.get("range"), `0-${first.length + second.length - 1}`);
    const put = await fetch(`${berth.url}${location}?digest=${sha256(Buffer.concat([first, second]))}`, { method: "PUT" });
    assert.equal(put.status, 201);
  });

  it("stores no blob for a monolithic POST or a closing PUT cut part-way (the digest cannot verify)", async () => {
    const data = randomBytes(256 * KiB);
    const monolithic = new RawConnection(port);
    monolithic.head("POST", `/v2/${REPOSITORY}/blobs/uploads/?digest=${sha256(data)}`, { "Content-Type": "application/octet-stream", "Content-Length": data.length });
    monolithic.socket.write(data.subarray(0, 100 * KiB));
    await delay(300);
    monolithic.socket.destroy();
    const location = await startSession();
    const closing = new RawConnection(port);
    closing.head("PUT", `${location}?digest=${sha256(data)}`, { "Content-Type": "application/octet-stream", "Content-Length": data.length });
    closing.socket.write(data.subarray(0, 100 * KiB));
    await delay(300);
    closing.socket.destroy();
    assert.equal(await rangeOnceMoved(location, "0-0"), `0-${100 * KiB - 1}`, "the closing PUT's session keeps what arrived");
    for (const deadline = Date.now() + 10_000; (await readdir(join(berth.root, "uploads"))).length > 1 && Date.now() < deadline; ) await delay(20);
    assert.deepEqual(await readdir(join(berth.root, "uploads")), [location.split("/").pop()], "the monolithic POST left no session");
    assert.equal((await fetch(`${berth.url}/v2/${REPOSITORY}/blobs/${sha256(data)}`, { method: "HEAD" })).status, 404);
    await resumeAndComplete(location, data);
  });

  it("cuts a client that stops reading a response for idleTimeout", async () => {
    const blob = randomBytes(32 * 1024 * KiB);
    const pushed = await fetch(`${berth.url}/v2/${REPOSITORY}/blobs/uploads/?digest=${sha256(blob)}`, { method: "POST", body: new Uint8Array(blob) });
    assert.equal(pushed.status, 201);
    const connection = new RawConnection(port);
    connection.socket.pause();
    connection.head("GET", `/v2/${REPOSITORY}/blobs/${sha256(blob)}`, { Connection: "close" });
    await delay(4_000);
    connection.socket.resume();
    const received = await connection.closedWithin(10_000, "berth did not close the connection");
    assert.ok(received.length < blob.length, `the stalled reader got ${received.length} of ${blob.length} bytes before berth cut it`);
  });

  it("does not cut a client while berth waits for its upstream: the upstream's readTimeout decides", async () => {
    const blob = randomBytes(256 * KiB);
    const digest = upstream.addBlob("team/app", blob);
    upstream.setFault(`/v2/team/app/blobs/${digest}`, { kind: "stall-after", sendBytes: 1000 });
    const connection = new RawConnection(port);
    const started = Date.now();
    connection.head("GET", `/v2/fake/team/app/blobs/${digest}`, { Connection: "close" });
    const received = await connection.closedWithin(15_000, "the stalled fill was not cut");
    const lasted = Date.now() - started;
    assert.ok(lasted >= 2_500, `the client was cut after ${lasted} ms, before the upstream's 3 s readTimeout`);
    assert.ok(received.length < blob.length);
  });

  it("answers 408 to a client that sends its headers slower than headersTimeout, however steadily", async () => {
    const connection = new RawConnection(port);
    const head = `GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${"a".repeat(40)}\r\n\r\n`;
    let cut = false;
    connection.closed.then(() => (cut = true));
    for (let i = 0; i < head.length && !cut; i++) {
      connection.socket.write(head[i]);
      await delay(100);
    }
    const answer = (await connection.closedWithin(10_000, "berth did not cut the slow headers")).toString("latin1");
    assert.match(answer, /^HTTP\/1\.1 408 /);
  });
});
