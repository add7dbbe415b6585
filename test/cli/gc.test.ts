import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { stringify as toYaml } from "yaml";
import { isLoopback } from "../../server/http/admin-routes.js";
import { Digest } from "../../server/reference/digest.js";
import { openFilesystemStorage } from "../../server/storage/storage.js";
import { startMirror } from "../mirror/mirror-fixture.js";
import { BerthProcess } from "../support/berth-process.js";
import { buildImage, type BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { lines, runBerth } from "./cli-fixture.js";

const KiB = 1024;

describe("berth gc", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let image: BuiltImage;
  const upstream = () => ({ host: origin.host, url: origin.url, prefix: "origin" });
  const layers = () => image.manifests[0].layers.map((l) => l.digest);

  before(async () => {
    work = await makeTempDir("cli-gc");
    origin = await OriginRegistry.start();
    image = await buildImage(join(work.path, "layout"), { ref: "app", layers: [{ size: 64 * KiB }, { size: 64 * KiB }, { size: 64 * KiB }] });
    await skopeoCopy(image.source, `docker://${origin.host}/team/app:v1`, { preserveDigests: true });
  });
  after(async () => {
    await origin?.close();
    await work?.remove();
  });

  it("asks a running berth to collect, printing what it freed, or the report as JSON", async (t) => {
    const berth = await startMirror([upstream()], { cache: { maxSize: "100KiB", minAge: 0, collectInterval: 0 } });
    t.after(() => berth.stop());
    const warmed = await runBerth(["warm", "--berth", berth.url, `${origin.host}/team/app:v1`]);
    assert.equal(warmed.code, 0, warmed.stderr);

    const result = await runBerth(["gc", "--berth", berth.url]);
    assert.equal(result.code, 0, result.stderr);
    const summary = /^collected: \d+ blobs checked; 0 unreferenced deleted, (\d+) cached evicted, [\d.]+ KiB freed, 0 abandoned uploads removed; 0 B hosted and ([\d.]+) KiB cached remain\n$/.exec(result.stdout);
    assert.ok(summary, result.stdout);
    assert.ok(Number(summary[1]) >= 2 && Number(summary[2]) <= 100, "least recently used blobs went until the cache fits 100 KiB");
    const left = await Promise.all(layers().map(async (digest) => (await berth.storage.blobs.size(Digest.parse(digest)!)) !== undefined));
    assert.ok(left.filter(Boolean).length <= 1, "at most one 64 KiB layer fits");

    const json = await runBerth(["gc", "--berth", berth.url, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as Record<string, number>;
    assert.deepEqual(Object.keys(report).sort(), ["blobs", "cacheBytes", "deletedUnreferenced", "evicted", "expiredUploads", "freedBytes", "hostedBytes"]);
    assert.equal(report.evicted, 0, "nothing more to evict");
  });

  it("collects a stopped berth's storage with --storage and --config", async (t) => {
    const storageDir = join(work.path, "stopped-storage");
    await mkdir(storageDir);
    const berth = await BerthProcess.start({ storageDir, config: { upstreams: [upstream()], cache: { collectInterval: 0 } } });
    t.after(() => berth.close());
    const warmed = await runBerth(["warm", "--berth", berth.url, `${origin.host}/team/app:v1`]);
    assert.equal(warmed.code, 0, warmed.stderr);
    await berth.stop();

    const config = join(work.path, "gc.yaml");
    await writeFile(config, toYaml({ upstreams: [upstream()], cache: { maxSize: "1KiB", minAge: 0 } }));
    const result = await runBerth(["gc", "--storage", storageDir, "--config", config, "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as Record<string, number>;
    assert.ok(report.evicted >= 3, `every layer is evicted to fit 1 KiB: ${result.stdout}`);
    const storage = await openFilesystemStorage(storageDir);
    for (const digest of layers()) assert.equal(await storage.blobs.size(Digest.parse(digest)!), undefined, `${digest} was evicted`);
  });

  it("refuses to collect offline a storage that replicas share, pointing at the running leader", async () => {
    const storageDir = join(work.path, "shared");
    await mkdir(storageDir);
    const config = join(work.path, "replica.yaml");
    await writeFile(
      config,
      toYaml({
        storage: { driver: "s3", s3: { bucket: "shared", endpoint: "http://127.0.0.1:1", forcePathStyle: true } },
        coordination: { redis: { url: "redis://127.0.0.1:1" }, internal: { secretFile: join(work.path, "secret") } },
      }),
    );
    const result = await runBerth(["gc", "--storage", storageDir, "--config", config]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(lines(result.stderr).length, 1);
    assert.match(result.stderr, /^berth gc: this storage is shared by replicas .*run berth gc against a running replica/);
  });

  it("fails with one line when the storage is missing, and exits 2 on an unknown option", async () => {
    const missing = await runBerth(["gc", "--storage", join(work.path, "nowhere")]);
    assert.equal(missing.code, 1);
    assert.deepEqual(lines(missing.stderr), [`berth gc: no berth storage at ${join(work.path, "nowhere")}`]);
    const unknown = await runBerth(["gc", "--force"]);
    assert.equal(unknown.code, 2);
    assert.equal(lines(unknown.stderr).length, 1);
    assert.match(unknown.stderr, /^berth gc: Unknown option '--force'/);
  });

  it("answers /admin/gc to loopback clients only", async (t) => {
    for (const address of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]) assert.ok(isLoopback(address), address);
    for (const address of ["10.0.0.1", "::ffff:10.0.0.1", "fe80::1", "128.0.0.1", undefined]) assert.ok(!isLoopback(address), String(address));
    const berth = await startMirror([]);
    t.after(() => berth.stop());
    const response = await fetch(`${berth.url}/admin/gc`, { method: "POST" });
    assert.equal(response.status, 200);
  });
});
