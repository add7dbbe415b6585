import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmod, chown, lstat, mkdir, readdir, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { parseConfig } from "../../config/load.js";
import { createLogger } from "../../server/log.js";
import { startBerth } from "../../server/server.js";
import { FilesystemDriver } from "../../server/storage/filesystem-driver.js";
import { FakeUpstream } from "../mirror/fake-upstream.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";

const sha256 = (bytes: Buffer) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** Every path under `root` (itself included) with its permission bits. */
async function modes(root: string): Promise<Map<string, { mode: number; directory: boolean }>> {
  const found = new Map<string, { mode: number; directory: boolean }>();
  const walk = async (path: string): Promise<void> => {
    const info = await lstat(path);
    found.set(relative(root, path) || ".", { mode: info.mode & 0o777, directory: info.isDirectory() });
    if (info.isDirectory()) for (const name of await readdir(path)) await walk(join(path, name));
  };
  await walk(root);
  return found;
}

/** A berth in token mode mirroring `upstream`, over `root`, started and used under umask 000. */
async function runBerth(root: string, upstream: FakeUpstream, use: (url: string, bearer: Record<string, string>) => Promise<void>): Promise<void> {
  const config = parseConfig(
    {
      listen: "127.0.0.1:0",
      storage: { root },
      upstreams: [{ host: upstream.host, url: upstream.url, prefix: "fake" }],
      auth: {
        mode: "token",
        users: [{ username: "ci", passwordHash: bcrypt.hashSync("the-password", 4) }],
        policy: [{ subjects: ["ci"], repositories: ["**"], actions: ["pull", "push"] }],
      },
    },
    "test",
  );
  const berth = await startBerth(config, createLogger("silent"));
  try {
    const basic = Buffer.from("ci:the-password").toString("base64");
    const scopes = ["repository:perm/app:pull,push", "repository:fake/team/app:pull"].map((s) => `scope=${s}`).join("&");
    const token = ((await (await fetch(`${berth.url}/token?service=berth&${scopes}`, { headers: { authorization: `Basic ${basic}` } })).json()) as { token: string }).token;
    await use(berth.url, { authorization: `Bearer ${token}` });
    await berth.collector.run();
  } finally {
    await berth.close();
  }
}

describe("stored content is readable by berth's user only", () => {
  let work: TempDir;
  let upstream: FakeUpstream;
  let umask: number;

  before(async () => {
    umask = process.umask(0o000);
    work = await makeTempDir("permissions");
    upstream = await new FakeUpstream().start();
  });
  after(async () => {
    process.umask(umask);
    await upstream?.stop();
    await work?.remove();
  });

  it("writes every file 0600 and every directory 0700 under a permissive umask: blobs, metadata, uploads, mirror records, access times, signing keys", async () => {
    const root = join(work.path, "fresh");
    const mirrored = randomBytes(4096);
    const mirroredDigest = upstream.addBlob("team/app", mirrored);
    await runBerth(root, upstream, async (url, bearer) => {
      const layer = randomBytes(8192);
      const pushed = await fetch(`${url}/v2/perm/app/blobs/uploads/?digest=${sha256(layer)}`, { method: "POST", headers: bearer, body: new Uint8Array(layer) });
      assert.equal(pushed.status, 201);
      const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
      const session = await fetch(`${url}/v2/perm/app/blobs/uploads/`, { method: "POST", headers: bearer });
      const location = session.headers.get("location")!;
      assert.equal((await fetch(`${url}${location}`, { method: "PATCH", headers: { ...bearer, "content-range": `0-${config.length - 1}` }, body: new Uint8Array(config) })).status, 202);
      assert.equal((await fetch(`${url}${location}?digest=${sha256(config)}`, { method: "PUT", headers: bearer })).status, 201);
      const open = await fetch(`${url}/v2/perm/app/blobs/uploads/`, { method: "POST", headers: bearer });
      assert.equal((await fetch(`${url}${open.headers.get("location")}`, { method: "PATCH", headers: bearer, body: new Uint8Array(randomBytes(100)) })).status, 202);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
          layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(layer), size: layer.length }],
        }),
      );
      const put = await fetch(`${url}/v2/perm/app/manifests/v1`, { method: "PUT", headers: { ...bearer, "content-type": "application/vnd.oci.image.manifest.v1+json" }, body: new Uint8Array(manifest) });
      assert.equal(put.status, 201);
      const pulled = await fetch(`${url}/v2/fake/team/app/blobs/${mirroredDigest}`, { headers: bearer });
      assert.ok(Buffer.from(await pulled.arrayBuffer()).equals(mirrored));
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
    });
    const found = await modes(root);
    for (const expected of ["blobs", "repositories/perm/app", "mirrors/fake", "uploads", "cache/last-access.json", "auth/keys", "_probe"]) {
      assert.ok([...found.keys()].some((path) => path.startsWith(expected)), `berth wrote ${expected}`);
    }
    const loose = [...found].filter(([, { mode, directory }]) => mode !== (directory ? 0o700 : 0o600)).map(([path, { mode }]) => `${path} ${mode.toString(8)}`);
    assert.deepEqual(loose, []);
  });

  it("starts on a volume's mount point it does not own (as under fsGroup): the root and lost+found stay as they are, its own entries close", async () => {
    const nobody = 65534;
    const root = join(work.path, "volume");
    await chmod(work.path, 0o755); // where the mount point lives, as /var/lib is
    await mkdir(root);
    await chown(root, 0, nobody);
    await chmod(root, 0o2775);
    await mkdir(join(root, "lost+found"), { mode: 0o700 });
    await mkdir(join(root, "blobs"), { mode: 0o755 });
    await chown(join(root, "blobs"), nobody, nobody);
    // As that user (the suite runs as root, so it can switch back).
    const { setegid, seteuid } = process as Required<Pick<NodeJS.Process, "setegid" | "seteuid">>;
    setegid(nobody);
    seteuid(nobody);
    try {
      await new FilesystemDriver(root).initialise();
    } finally {
      seteuid(0);
      setegid(0);
    }
    const found = await modes(root);
    assert.equal(found.get(".")?.mode, 0o775, "the mount point's mode (setgid aside) is the kubelet's");
    assert.equal(found.get("lost+found")?.mode, 0o700);
    assert.equal(found.get("blobs")?.mode, 0o700);
    assert.equal(found.get("_tmp")?.mode, 0o700);
  });

  it("closes a store an older berth left open: the root and its top-level entries become 0700/0600, so nothing below is reachable by others", async () => {
    const root = join(work.path, "upgraded");
    await mkdir(join(root, "blobs", "sha256", "ab"), { recursive: true, mode: 0o755 });
    await writeFile(join(root, "blobs", "sha256", "ab", "old-blob"), "old content", { mode: 0o644 });
    await mkdir(join(root, "cache"), { mode: 0o755 });
    await writeFile(join(root, "cache", "last-access.json"), "{}", { mode: 0o644 });
    await chmod(root, 0o755);
    await runBerth(root, upstream, async () => {});
    const found = await modes(root);
    assert.equal(found.get(".")?.mode, 0o700);
    for (const [path, { mode, directory }] of found) {
      if (path !== "." && !path.includes("/")) assert.equal(mode, directory ? 0o700 : 0o600, path);
    }
  });
});
