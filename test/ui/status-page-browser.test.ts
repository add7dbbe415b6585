import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { blob, descriptorOf, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST } from "../http/oci-fixtures.js";
import { FakeUpstream } from "../mirror/fake-upstream.js";
import { readFully, startMirror } from "../mirror/mirror-fixture.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { decodePng } from "./png.js";

const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

describe("/ui in headless Chromium, after a mirrored pull through a fake upstream", () => {
  let fake: FakeUpstream;
  let berth: Awaited<ReturnType<typeof startMirror>>;
  let browser: Browser;
  let page: Page;
  let work: TempDir;
  let stalledDigest: string;
  const stalledPull = new AbortController();

  before(async () => {
    work = await makeTempDir("ui-browser");
    fake = await new FakeUpstream().start();
    berth = await startMirror([{ host: fake.host, url: fake.url, prefix: "fake" }]);

    const config = blob('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const layer = blob(randomBytes(100 * 1024));
    fake.addBlob("team/app", config.bytes);
    fake.addBlob("team/app", layer.bytes);
    fake.addManifest("team/app", { schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptorOf(config, OCI_CONFIG), layers: [descriptorOf(layer, OCI_LAYER)] }, "v1");
    // A cold pull and a warm one: three misses, three hits.
    for (let pull = 0; pull < 2; pull++) {
      for (const path of ["manifests/v1", `blobs/${config.digest}`, `blobs/${layer.digest}`]) {
        const response = await fetch(`${berth.url}/v2/fake/team/app/${path}`, { headers: { accept: OCI_MANIFEST } });
        assert.equal(response.status, 200);
        assert.ok(Buffer.isBuffer(await readFully(response)));
      }
    }
    await berth.collector.run();

    // A fourth miss that stays in flight: the upstream sends 64 KiB of 1 MiB and stalls.
    stalledDigest = fake.addBlob("team/app", randomBytes(1024 * 1024));
    fake.setFault(`/v2/team/app/blobs/${stalledDigest}`, { kind: "stall-after", sendBytes: 64 * 1024 });
    const stalled = await fetch(`${berth.url}/v2/fake/team/app/blobs/${stalledDigest}`, { signal: stalledPull.signal });
    assert.equal(stalled.status, 200);
    for (let attempt = 0; ; attempt++) {
      const html = await (await fetch(`${berth.url}/ui`)).text();
      if (html.includes(stalledDigest) && html.includes("64.0 KiB")) break;
      if (attempt === 600) throw new Error("the stalled transfer never showed 64 KiB received");
      await delay(50);
    }

    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const response = await page.goto(`${berth.url}/ui`);
    assert.equal(response?.status(), 200);
  });
  after(async () => {
    stalledPull.abort();
    await browser?.close();
    await berth?.stop();
    await fake?.stop();
    await work?.remove();
  });

  it("shows the upstream, its health and the cache hit ratio", async () => {
    const upstreams = await page.locator("#upstreams").innerText();
    assert.match(upstreams, new RegExp(`${fake.host.replace(/\./g, "\\.")}\\s+${fake.url.replace(/\./g, "\\.")}\\s+ok`));
    assert.equal(await page.locator("#hit-ratio").innerText(), "42.9%");
    assert.match(await page.locator("#cache").innerText(), /Hits \/ misses\s+3 \/ 4/);
  });

  it("shows the transfer in flight with how much of it arrived", async () => {
    const transfers = await page.locator("#transfers").innerText();
    assert.match(transfers, new RegExp(`${stalledDigest}\\s+64\\.0 KiB\\s+1\\.0 MiB\\s+6%`));
  });

  it("shows the busiest repository and the mirrored content the last collection measured", async () => {
    assert.match(await page.locator("#repositories").innerText(), /fake\/team\/app\s+6/);
    assert.match(await page.locator("#cache-size").innerText(), /^\d+\.\d KiB$/);
    assert.match(await page.locator("#collection").innerText(), /Blobs evicted\s+0/);
  });

  it("renders to a whole PNG of the page's size, with something drawn on it", async () => {
    const path = join(work.path, "status.png");
    await page.screenshot({ path, fullPage: true });
    const size = await page.evaluate(() => ({ width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight }));
    assert.ok((await stat(path)).size > 0);
    const png = decodePng(await readFile(path));
    assert.equal(png.width, Math.max(size.width, 1280));
    assert.equal(png.height, Math.max(size.height, 900));
    assert.ok(png.distinctPixels > 10, `a page of text has more than ${png.distinctPixels} colours`);
  });
});
