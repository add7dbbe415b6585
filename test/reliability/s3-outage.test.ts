import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { CreateMultipartUploadCommand, UploadPartCommand } from "@aws-sdk/client-s3";
import { parseConfig } from "../../config/load.js";
import { Digest } from "../../server/reference/digest.js";
import { createLogger } from "../../server/log.js";
import { startBerth, type Berth } from "../../server/server.js";
import { FaultProxy } from "../support/fault-proxy.js";
import { storageConfigFor } from "../support/storage-drivers.js";
import { rawS3Client, swiftS3 } from "../support/swift-s3.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

/** The value of a metric line (`name{labels} value`) in a /metrics page. */
function metric(page: string, line: string): number | undefined {
  const found = page.split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe("berth on S3 when S3 fails, and its S3 metrics", () => {
  let dir: TempDir;
  let proxy: FaultProxy;
  let berth: Berth;
  let bucket: string;
  const blob = randomBytes(64 * 1024);
  const digest = Digest.of("sha256", blob);

  before(async () => {
    dir = await makeTempDir("s3-outage");
    proxy = await FaultProxy.start((await swiftS3()).endpoint);
    const storage = await storageConfigFor("s3", dir.path, { endpoint: proxy.url, timeout: "1s", connectTimeout: "1s", maxAttempts: 2 });
    bucket = (storage.s3 as { bucket: string }).bucket;
    berth = await startBerth(parseConfig({ listen: "127.0.0.1:0", storage, cache: { collectInterval: 0 } }, "test"), createLogger("silent"));
    const pushed = await fetch(`${berth.url}/v2/team/app/blobs/uploads/?digest=${digest}`, { method: "POST", body: blob, headers: { "Content-Type": "application/octet-stream" } });
    assert.equal(pushed.status, 201);
  });
  after(async () => {
    await berth.close();
    await proxy.close();
    await dir.remove();
  });

  it("answers 503 with Retry-After while S3 is down, turns unready, and serves the same bytes once it is back", async () => {
    for (const mode of ["refuse", "stall"] as const) {
      proxy.set(mode);
      const started = Date.now();
      const pulled = await fetch(`${berth.url}/v2/team/app/blobs/${digest}`, { signal: AbortSignal.timeout(30_000) });
      assert.equal(pulled.status, 503, mode);
      assert.match(pulled.headers.get("retry-after") ?? "", /^\d+$/);
      assert.equal(((await pulled.json()) as { errors: { code: string }[] }).errors[0].code, "UNAVAILABLE");
      assert.ok(Date.now() - started < 15_000, `${mode}: answered after ${Date.now() - started} ms`);
      assert.equal((await fetch(`${berth.url}/readyz`)).status, 503, `${mode}: unready`);
      proxy.set("forward");
      let ready = 0;
      for (let i = 0; i < 100 && ready !== 200; i++) {
        ready = (await fetch(`${berth.url}/readyz`)).status;
        if (ready !== 200) await delay(100);
      }
      assert.equal(ready, 200, `${mode}: ready again`);
      const again = await fetch(`${berth.url}/v2/team/app/blobs/${digest}`);
      assert.equal(again.status, 200);
      assert.ok(blob.equals(Buffer.from(await again.arrayBuffer())));
    }
  });

  it("aborts an abandoned multipart upload at collection and exports S3 requests, bytes and aborts in /metrics", async () => {
    const raw = rawS3Client(await swiftS3());
    try {
      const key = `blobs/sha256/00/${"0".repeat(64)}`;
      const upload = await raw.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      await raw.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: upload.UploadId, PartNumber: 1, Body: randomBytes(2048) }));
    } finally {
      raw.destroy();
    }
    // Swift lists a new multipart upload after a moment: collect until the collection sees it.
    let aborted = 0;
    for (let i = 0; i < 50 && aborted === 0; i++) {
      const report = (await (await fetch(`${berth.url}/admin/gc`, { method: "POST" })).json()) as { multipartUploads?: { aborted: number } };
      aborted = report.multipartUploads?.aborted ?? 0;
      if (aborted === 0) await delay(200);
    }
    assert.equal(aborted, 1);
    const page = await (await fetch(`${berth.url}/metrics`)).text();
    assert.equal(metric(page, "berth_s3_multipart_uploads_aborted_total"), 1);
    assert.equal(metric(page, "berth_s3_abandoned_multipart_uploads"), 0);
    assert.equal(metric(page, "berth_s3_up"), 1);
    assert.ok((metric(page, 'berth_s3_requests_total{operation="PutObject"}') ?? 0) >= 1);
    assert.ok((metric(page, "berth_s3_sent_bytes_total") ?? 0) >= blob.length);
  });
});
