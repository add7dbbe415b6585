import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import pino from "pino";
import { parseConfig } from "../../config/load.js";
import { startBerth, type Berth } from "../../server/server.js";

/** Everything berth logs, one parsed JSON object per line. */
class CapturedLog extends Writable {
  text = "";
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString("utf8");
    callback();
  }
  get entries(): Record<string, unknown>[] {
    return this.text
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
  requestLines(reqId: string): Record<string, unknown>[] {
    return this.entries.filter((e) => e.msg === "request" && e.reqId === reqId);
  }
}

/** The response has ended for the client, but berth logs on the server side's close: wait for that line. */
async function lineFor(log: CapturedLog, reqId: string): Promise<Record<string, unknown>> {
  for (let attempt = 0; attempt < 200 && log.requestLines(reqId).length === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 10));
  const lines = log.requestLines(reqId);
  assert.equal(lines.length, 1, `one request line for ${reqId}`);
  return lines[0];
}

describe("request log", () => {
  const log = new CapturedLog();
  let berth: Berth;
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "berth-request-log-"));
    const config = parseConfig(
      {
        listen: "127.0.0.1:0",
        storage: { root },
        auth: {
          mode: "token",
          users: [{ username: "ci", passwordHash: bcrypt.hashSync("the-password", 4) }],
          policy: [{ subjects: ["ci"], repositories: ["**"], actions: ["pull", "push"] }],
        },
      },
      "test",
    );
    berth = await startBerth(config, pino({ level: "info", base: undefined }, log));
  });
  after(async () => {
    await berth?.close();
    await rm(root, { recursive: true, force: true });
  });

  it("writes one JSON line per request with method, route kind, status, duration, bytes and the request id it echoes", async () => {
    const response = await fetch(`${berth.url}/v2/`);
    assert.equal(response.status, 401);
    const body = await response.arrayBuffer();
    const id = response.headers.get("x-request-id");
    assert.match(id ?? "", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const line = await lineFor(log, id!);
    assert.equal(line.level, 30);
    assert.equal(line.method, "GET");
    assert.equal(line.route, "base");
    assert.equal(line.status, 401);
    assert.equal(line.bytes, body.byteLength);
    assert.equal(typeof line.durationMs, "number");
  });

  it("keeps a client's X-Request-Id and answers with it", async () => {
    const response = await fetch(`${berth.url}/v2/team/app/manifests/v1`, { headers: { "x-request-id": "trace-4f2a/1" } });
    await response.arrayBuffer();
    assert.equal(response.headers.get("x-request-id"), "trace-4f2a/1");
    const line = await lineFor(log, "trace-4f2a/1");
    assert.equal(line.route, "manifest");
    assert.equal(line.repository, "team/app");
  });

  it("replaces a client request id that is too long or not printable ASCII with its own", async () => {
    for (const offered of ["x".repeat(129), "two words"]) {
      const response = await fetch(`${berth.url}/healthz`, { headers: { "x-request-id": offered } });
      await response.arrayBuffer();
      const id = response.headers.get("x-request-id");
      assert.ok(id && id !== offered);
    }
  });

  it("never logs credentials: no Authorization header, no password or token from a query string or form", async () => {
    const secrets = ["basic-secret-a7", "query-password-b8", "query-token-c9", "bearer-secret-d0", "form-password-e1", "refresh-token-f2"];
    const basic = Buffer.from(`ci:${secrets[0]}`).toString("base64");
    const ids: string[] = [];
    const send = async (url: string, init: RequestInit = {}) => {
      const response = await fetch(url, init);
      await response.arrayBuffer();
      ids.push(response.headers.get("x-request-id")!);
    };
    await send(`${berth.url}/token?service=berth&scope=repository:team/app:pull`, { headers: { authorization: `Basic ${basic}` } });
    await send(`${berth.url}/token?service=berth&account=ci&password=${secrets[1]}&token=${secrets[2]}`);
    await send(`${berth.url}/v2/team/app/tags/list?token=${secrets[2]}&password=${secrets[1]}`, { headers: { authorization: `Bearer ${secrets[3]}` } });
    await send(`${berth.url}/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", service: "berth", client_id: "test", username: "ci", password: secrets[4] }).toString(),
    });
    await send(`${berth.url}/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "refresh_token", service: "berth", client_id: "test", refresh_token: secrets[5] }).toString(),
    });
    for (const id of ids) await lineFor(log, id);

    for (const secret of [...secrets, basic]) assert.ok(!log.text.includes(secret), `the log holds ${secret}`);
    assert.ok(!/authorization/i.test(log.text), "the log names an Authorization header");
  });
});
