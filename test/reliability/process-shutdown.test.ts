import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { BerthProcess } from "../support/berth-process.js";
import { LyingUpstream } from "./lying-upstream.js";
import { http, trickle } from "./registry-client.js";
import { auditStore, sha256 } from "./store-audit.js";

const KiB = 1024;

/** A GET whose progress can be watched: bytes so far, and how it ended. */
function watchedGet(url: string): { received: () => number; ended: Promise<{ status: number; body: Buffer; complete: boolean }> } {
  let received = 0;
  const ended = new Promise<{ status: number; body: Buffer; complete: boolean }>((resolve) => {
    const chunks: Buffer[] = [];
    const req = request(url, { agent: false }, (res) => {
      res.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
      });
      const done = () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), complete: res.complete });
      res.on("end", done);
      res.on("aborted", done);
      res.on("error", done);
    });
    req.on("error", () => resolve({ status: 0, body: Buffer.concat(chunks), complete: false }));
    req.end();
  });
  return { received: () => received, ended };
}

/** Tries to open a connection: true when it is accepted, false when refused. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(10)) {
    if (await check()) return;
  }
  assert.fail(`timed out waiting until ${what}`);
}

describe("graceful shutdown of a berth process (SIGTERM)", () => {
  let upstream: LyingUpstream;

  before(async () => {
    upstream = await new LyingUpstream().start();
  });
  after(async () => {
    await upstream?.stop();
  });

  const berthWith = (gracePeriod: string) =>
    BerthProcess.start({ config: { upstreams: [{ host: upstream.host, url: upstream.url, prefix: "slow" }], shutdown: { gracePeriod }, cache: { collectInterval: 0 } } });

  it("refuses new connections at once, lets a slow transfer finish within the grace period, and exits 0", async () => {
    const body = randomBytes(2 * 1024 * KiB);
    const { path, digest } = LyingUpstream.blobPath("shutdown/finishes", body);
    // About 3 s from first byte to last.
    upstream.set(path, { kind: "trickle-body", body, bytes: 64 * KiB, intervalMs: 100 });
    const berth = await berthWith("60s");
    try {
      const port = Number(new URL(berth.url).port);
      const transfer = watchedGet(`${berth.url}/v2/slow${path.slice("/v2".length)}`);
      await until(() => transfer.received() > 0, "the transfer has begun");
      process.kill(berth.pid, "SIGTERM");
      await until(async () => !(await accepts(port)), "a new connection is refused");
      assert.ok(transfer.received() < body.length, "new connections were refused while the transfer was still running");
      const result = await transfer.ended;
      assert.equal(result.status, 200);
      assert.ok(result.complete && sha256(result.body) === digest, "the transfer in flight completed, byte for byte");
      assert.deepEqual(await berth.exited, { code: 0, signal: null });
      const audit = await auditStore(berth.storageDir);
      assert.deepEqual(audit.problems, []);
      assert.ok(audit.blobs.has(digest), "the finished transfer's blob is kept");
    } finally {
      await berth.close();
    }
  });

  it("cuts a pull and a push that outlast the grace period, exits 0, keeps no partial blob, keeps what the cut chunk delivered, and the restart finds no temp file", async () => {
    const body = randomBytes(2 * 1024 * KiB);
    const { path, digest } = LyingUpstream.blobPath("shutdown/cut", body);
    // About 30 s: far longer than the grace period.
    upstream.set(path, { kind: "trickle-body", body, bytes: 64 * KiB, intervalMs: 1000 });
    const berth = await berthWith("1s");
    try {
      const pull = watchedGet(`${berth.url}/v2/slow${path.slice("/v2".length)}`);
      const started = await http(`${berth.url}/v2/shutdown/push/blobs/uploads/`, { method: "POST" });
      assert.equal(started.status, 202);
      const location = String(started.headers.location);
      const chunk = randomBytes(1024 * KiB);
      assert.equal((await http(`${berth.url}${location}`, { method: "PATCH", headers: { "content-range": `0-${chunk.length - 1}`, "content-length": chunk.length }, body: chunk })).status, 202);
      // A second chunk uploaded far slower than the grace period allows.
      let piecesSent = 0;
      const counted = async function* () {
        for await (const piece of trickle(chunk, 16 * KiB, 500)) {
          piecesSent++;
          yield piece;
        }
      };
      const push = http(`${berth.url}${location}`, {
        method: "PATCH",
        headers: { "content-range": `${chunk.length}-${2 * chunk.length - 1}`, "content-length": chunk.length },
        body: counted(),
      }).catch((err: Error) => err);
      await until(() => pull.received() > 0 && piecesSent >= 2, "the pull and the push have begun");
      process.kill(berth.pid, "SIGTERM");
      const cut = await pull.ended;
      assert.ok(!cut.complete || cut.body.length < body.length, "the pull is cut at the end of the grace period");
      assert.ok((await push) instanceof Error, "the push is cut too");
      assert.deepEqual(await berth.exited, { code: 0, signal: null });
      const left = await auditStore(berth.storageDir);
      assert.deepEqual(left.problems, []);
      assert.equal(left.blobs.has(digest), false, "no partial blob is kept");

      await berth.restart();
      assert.deepEqual(await readdir(join(berth.storageDir, "_tmp")), [], "the restart finds _tmp empty");
      const status = await http(`${berth.url}${location}`);
      assert.equal(status.status, 204);
      const kept = Number(/^0-(\d+)$/.exec(String(status.headers.range))?.[1]) + 1;
      assert.ok(kept > chunk.length && kept < 2 * chunk.length, `the session kept its whole chunk and what arrived of the cut one (Range ${status.headers.range})`);
      const rest = Buffer.concat([chunk, chunk]).subarray(kept);
      const resumed = await http(`${berth.url}${location}`, { method: "PATCH", headers: { "content-range": `${kept}-${2 * chunk.length - 1}`, "content-length": rest.length }, body: rest });
      assert.equal(resumed.status, 202);
      const whole = sha256(Buffer.concat([chunk, chunk]));
      assert.equal((await http(`${berth.url}${location}?digest=${whole}`, { method: "PUT" })).status, 201, "the resumed upload verifies");
    } finally {
      await berth.close();
    }
  });
});
