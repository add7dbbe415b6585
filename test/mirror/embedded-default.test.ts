import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { embeddedDefaultDocument, PUBLIC_REGISTRIES } from "../../config/load.js";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd, CONTAINERD_ACCEPT } from "../support/containerd.js";
import { buildImage, type BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

const AMD64 = { os: "linux", architecture: "amd64" };

/** The embedded default's upstreams, each fetching from `url` instead of the public registry. */
function embeddedDefaultFetchingFrom(url: (host: string) => string, upstream: Record<string, unknown> = {}): Record<string, unknown> {
  const document = embeddedDefaultDocument();
  const upstreams = document.upstreams as { host: string }[];
  return { ...document, upstreams: upstreams.map((u) => ({ ...u, url: url(u.host), ...upstream })) };
}

async function manifest(berthUrl: string, path: string): Promise<{ status: number; digest: string | null; body: string }> {
  const response = await fetch(`${berthUrl}/v2/${path}`, { headers: { Accept: CONTAINERD_ACCEPT.join(", ") } });
  return { status: response.status, digest: response.headers.get("docker-content-digest"), body: await response.text() };
}

/**
 * The embedded default (what `npm start` runs) mirrors the public registries by ?ns= and by
 * path prefix. Tests cannot reach them: the same config, each upstream's url pointed at a
 * local Distribution, answers every route the default opens.
 */
describe("the embedded default config's mirrors, against a local origin", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let berth: BerthProcess;
  let busybox: BuiltImage;
  let app: BuiltImage;

  before(async () => {
    work = await makeTempDir("embedded-default");
    origin = await OriginRegistry.start();
    busybox = await buildImage(join(work.path, "busybox"), { ref: "busybox", platforms: [AMD64], seed: "embedded-busybox" });
    await skopeoCopy(busybox.source, `docker://${origin.host}/library/busybox:latest`, { all: true, preserveDigests: true });
    app = await buildImage(join(work.path, "app"), { ref: "app", platforms: [AMD64], seed: "embedded-app" });
    await skopeoCopy(app.source, `docker://${origin.host}/team/app:v1`, { all: true, preserveDigests: true });
    berth = await BerthProcess.start({ config: embeddedDefaultFetchingFrom(() => origin.url) });
  });
  after(async () => {
    await berth?.close();
    await origin?.close();
    await work?.remove();
  });

  it("answers curl 'localhost:5000/v2/library/busybox/manifests/latest?ns=docker.io', and busybox alone gets library/", async () => {
    for (const path of ["library/busybox/manifests/latest?ns=docker.io", "busybox/manifests/latest?ns=docker.io", "docker.io/library/busybox/manifests/latest"]) {
      const answer = await manifest(berth.url, path);
      assert.equal(answer.status, 200, `${path}: ${answer.body}`);
      assert.equal(answer.digest, busybox.digest, path);
    }
  });

  for (const host of PUBLIC_REGISTRIES) {
    it(`mirrors ${host} by ?ns=${host} and by the prefix /v2/${host}/`, async () => {
      for (const path of [`team/app/manifests/v1?ns=${host}`, `${host}/team/app/manifests/v1`]) {
        const answer = await manifest(berth.url, path);
        assert.equal(answer.status, 200, `${path}: ${answer.body}`);
        assert.equal(answer.digest, app.digest, path);
      }
    });
  }

  it("serves containerd pulling docker.io/library/busybox:latest through a hosts.toml that names berth, the registry itself unreachable", async (t) => {
    const containerd = await Containerd.start();
    t.after(() => containerd.close());
    await containerd.setHosts("docker.io", { server: "http://127.0.0.1:9", mirrors: [{ url: berth.url }] });

    const pulled = await containerd.pull("docker.io/library/busybox:latest", { platform: "linux/amd64" });

    assert.equal(pulled.digest, busybox.digest);
  });
});

/**
 * A TCP listener that accepts connections and never says a word: a TLS upstream behind it
 * never completes its handshake, so only the connect timeout ends the wait.
 */
async function silentListener(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("the embedded default config's mirrors, when the registry cannot be reached", () => {
  it("answers 503 UNAVAILABLE naming the registry once the connect timeout ends the handshake, and at once while backing off", async (t) => {
    const silent = await silentListener();
    t.after(() => silent.close());
    const berth = await BerthProcess.start({ config: embeddedDefaultFetchingFrom(() => `https://127.0.0.1:${silent.port}`, { connectTimeout: "2s" }) });
    t.after(() => berth.close());

    for (const path of ["library/busybox/manifests/latest?ns=docker.io", "registry.k8s.io/pause/manifests/3.9"]) {
      // The client gives up long after the connect timeout: an answer, not this abort, must end the request.
      const response = await fetch(`${berth.url}/v2/${path}`, { signal: AbortSignal.timeout(60_000) });
      assert.equal(response.status, 503, path);
      assert.ok(response.headers.get("retry-after"), `${path}: Retry-After`);
      const body = (await response.json()) as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0].code, "UNAVAILABLE");
      assert.match(body.errors[0].message, /^upstream (docker\.io|registry\.k8s\.io) is unavailable/);
    }
    const again = await fetch(`${berth.url}/v2/library/busybox/manifests/latest?ns=docker.io`, { signal: AbortSignal.timeout(60_000) });
    assert.equal(again.status, 503, "backing off: answered without a second wait");
  });
});
