import assert from "node:assert/strict";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeAuthFile } from "../support/auth-file.js";
import { BerthProcess } from "../support/berth-process.js";
import { Containerd } from "../support/containerd.js";
import { sha256Of } from "../support/dir-image.js";
import { buildImage, type BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { Podman } from "../support/podman.js";
import { skopeoCopy, skopeoInspectRaw } from "../support/skopeo.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { TokenIssuer } from "../support/token-issuer.js";

/** A loopback `host:port` nothing listens on: the address a mirror's fallback must never reach. */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

describe("the real peers the harness drives", () => {
  let work: TempDir;
  let multi: BuiltImage;

  before(async () => {
    work = await makeTempDir("e2e-peers");
    multi = await buildImage(join(work.path, "layout"), {
      ref: "multi",
      platforms: [
        { os: "linux", architecture: "amd64" },
        { os: "linux", architecture: "arm64", variant: "v8" },
      ],
    });
  });
  after(() => work?.remove());

  it("a token-auth origin takes a known user's push, refuses an anonymous one, and serves containerd's OAuth2 token flow", async (t) => {
    const issuer = await TokenIssuer.start({ users: { alice: "wonderland" } });
    t.after(() => issuer.close());
    const origin = await OriginRegistry.start({ auth: { kind: "token", issuer } });
    t.after(() => origin.close());
    const containerd = await Containerd.start();
    t.after(() => containerd.close());

    await assert.rejects(skopeoCopy(multi.source, `docker://${origin.host}/private/multi:v1`, { all: true }), /unauthorized|denied/i);
    await skopeoCopy(multi.source, `docker://${origin.host}/private/multi:v1`, { all: true, destCreds: "alice:wonderland" });
    await containerd.setHosts(origin.host, {});
    const pulled = await containerd.pull(`${origin.host}/private/multi:v1`, { user: "alice:wonderland" });

    assert.equal(pulled.digest, multi.digest);
    assert.ok(issuer.requests.some((r) => r.method === "POST" && r.grantType === "password" && r.account === "alice"));
    assert.ok(issuer.requests.some((r) => r.method === "GET" && r.account === "alice" && r.scopes.includes("repository:private/multi:pull,push")));
  });

  it("an htpasswd origin accepts the right password, from flags or an auth file, and refuses a wrong one", async (t) => {
    const origin = await OriginRegistry.start({ auth: { kind: "htpasswd", users: { bob: "builder" } } });
    t.after(() => origin.close());
    const authfile = join(work.path, "htpasswd-auth.json");
    await writeAuthFile(authfile, { [origin.host]: { username: "bob", password: "builder" } });

    await assert.rejects(skopeoCopy(multi.source, `docker://${origin.host}/basic/multi:v1`, { all: true, destCreds: "bob:wrong" }), /unauthorized|authentication required/i);
    await skopeoCopy(multi.source, `docker://${origin.host}/basic/multi:v1`, { all: true, destCreds: "bob:builder" });
    assert.equal(sha256Of(await skopeoInspectRaw(`docker://${origin.host}/basic/multi:v1`, { authfile })), multi.digest);
  });

  it("an origin restarts on the same address with its content", async (t) => {
    const origin = await OriginRegistry.start();
    t.after(() => origin.close());
    await skopeoCopy(multi.source, `docker://${origin.host}/kept/multi:v1`, { all: true });

    await origin.restart();

    assert.equal(sha256Of(await skopeoInspectRaw(`docker://${origin.host}/kept/multi:v1`)), multi.digest);
    assert.ok((await origin.count("GET", "/v2/kept/multi/manifests/v1")) >= 1, "the access log spans both runs");
  });

  it("Distribution's pull-through proxy serves a warm blob from its cache, after two upstream GETs for the cold one", async (t) => {
    const upstream = await OriginRegistry.start();
    t.after(() => upstream.close());
    await skopeoCopy(multi.source, `docker://${upstream.host}/library/multi:v1`, { all: true });
    const proxy = await OriginRegistry.start({ proxy: { remoteUrl: upstream.url } });
    t.after(() => proxy.close());
    const blobPath = `/v2/library/multi/blobs/${multi.manifests[0].layers[0].digest}`;

    for (const round of [1, 2]) {
      const out = await makeTempDir("e2e-proxy-out");
      await skopeoCopy(`docker://${proxy.host}/library/multi:v1`, `dir:${out.path}`, { overrideArch: "amd64" }).finally(() => out.remove());
      assert.equal(await proxy.count("GET", blobPath), round);
    }
    // Distribution 2.8 streams a cold blob to the client and fetches it again to store it: the reference berth beats.
    assert.equal(await upstream.count("GET", blobPath), 2);
  });

  it("podman pulls the arm64 image through a registries.conf path-prefix mirror", async (t) => {
    const origin = await OriginRegistry.start();
    t.after(() => origin.close());
    await skopeoCopy(multi.source, `docker://${origin.host}/mirror-prefix/team/multi:v1`, { all: true });
    const unreachable = await closedPort();
    const podman = await Podman.create([{ location: unreachable, mirrors: [{ location: `${origin.host}/mirror-prefix` }] }]);
    t.after(() => podman.close());

    const image = await podman.pull(`${unreachable}/team/multi:v1`, { platform: "linux/arm64" });

    assert.equal(image.digest, multi.digest);
    assert.equal(image.architecture, "arm64");
    const blobPath = `/v2/mirror-prefix/team/multi/blobs/${multi.manifests[1].layers[0].digest}`;
    assert.equal(await origin.count("GET", blobPath), 1);
    await podman.removeAllImages();
    await podman.pull(`${unreachable}/team/multi:v1`, { platform: "linux/arm64" });
    assert.equal(await origin.count("GET", blobPath), 2, "a removed image is fetched again");
  });

  it("containerd pulls through a hosts.toml mirror, naming the registry in ns=", async (t) => {
    const origin = await OriginRegistry.start();
    t.after(() => origin.close());
    await skopeoCopy(multi.source, `docker://${origin.host}/team/multi:v1`, { all: true });
    const unreachable = await closedPort();
    const containerd = await Containerd.start();
    t.after(() => containerd.close());
    await containerd.setHosts(unreachable, { mirrors: [{ url: origin.url }] });

    const pulled = await containerd.pull(`${unreachable}/team/multi:v1`, { platform: "linux/amd64" });

    assert.equal(pulled.digest, multi.digest);
    const requests = (await origin.accessLog()).filter((e) => e.userAgent.startsWith("containerd/"));
    assert.ok(requests.some((e) => e.method === "HEAD" && e.path === "/v2/team/multi/manifests/v1"), "resolves the tag with a HEAD");
    assert.ok(requests.every((e) => new URLSearchParams(e.query).get("ns") === unreachable), "every request names the registry in ns=");
    const blobPath = `/v2/team/multi/blobs/${multi.manifests[0].layers[0].digest}`;
    assert.equal(await origin.count("GET", blobPath), 1);
    await containerd.removeImage(`${unreachable}/team/multi:v1`);
    await containerd.pull(`${unreachable}/team/multi:v1`, { platform: "linux/amd64" });
    assert.equal(await origin.count("GET", blobPath), 2, "a removed image is fetched again");
  });

  it("berth keeps a pushed image across a SIGKILL and a restart on the same port and storage", async (t) => {
    const berth = await BerthProcess.start();
    t.after(() => berth.close());
    await skopeoCopy(multi.source, `docker://${berth.host}/kept/multi:v1`, { all: true });

    assert.equal((await berth.kill()).signal, "SIGKILL");
    await berth.restart();
    assert.equal(sha256Of(await skopeoInspectRaw(`docker://${berth.host}/kept/multi:v1`)), multi.digest);
    assert.deepEqual(await berth.stop(), { code: 0, signal: null }, "SIGTERM is a clean exit");
  });
});
