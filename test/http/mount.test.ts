import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { AccessController, AccessRequest, Action, Principal } from "../../server/auth/access.js";
import { Digest } from "../../server/reference/digest.js";
import { RegistryError } from "../../server/registry/errors.js";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import { ABSENT_DIGEST, blob, errorCode, imageManifest, pushBlob, pushManifest, uniqueConfig } from "./oci-fixtures.js";

/** Everyone may do everything except pull from `private/...`. */
class PrivateRepositories implements AccessController {
  async authorize(_request: unknown, access: AccessRequest): Promise<Principal> {
    if (access.repository !== undefined && !access.actions.every((action) => this.allows(TESTER, access.repository!, action))) {
      throw new RegistryError("DENIED");
    }
    return TESTER;
  }

  allows(_principal: Principal, repository: string, action: Action): boolean {
    return !(repository.startsWith("private/") && action === "pull");
  }
}
const TESTER: Principal = { subject: "tester" };

describe("mounting a blob from another repository", () => {
  let app: HostedApp;
  const shared = blob("a layer shared between repositories");
  const secret = blob("a layer only a private repository holds");

  before(async () => {
    app = await startHostedApp({ access: new PrivateRepositories() });
    await pushBlob(app, "mount/source", shared);
    // Nobody may push to private/ either (a push needs pull), so its content is placed directly.
    for (const content of [shared, secret]) {
      const digest = Digest.parse(content.digest)!;
      await app.storage.blobs.ingestBuffer(content.bytes);
      await app.storage.metadata.linkBlob("private/source", digest);
      await app.storage.holders.add(digest, "private/source");
    }
  });
  after(() => app.close());

  const mount = (target: string, digest: string, from?: string) =>
    app.request().post(`/v2/${target}/blobs/uploads/?mount=${digest}${from === undefined ? "" : `&from=${from}`}`);

  it("mounts a blob the source repository holds with 201, the blob's Location and Docker-Content-Digest", async () => {
    const res = await mount("mount/target", shared.digest, "mount/source").expect(201);
    assert.equal(res.headers.location, `/v2/mount/target/blobs/${shared.digest}`);
    assert.equal(res.headers["docker-content-digest"], shared.digest);
    await app.request().get(res.headers.location).expect(200);
  });

  it("lets a manifest in the target repository reference a mounted blob", async () => {
    const config = uniqueConfig();
    await pushBlob(app, "mount/with-manifest", config);
    await mount("mount/with-manifest", shared.digest, "mount/source").expect(201);
    await pushManifest(app, "mount/with-manifest", "v1", imageManifest(config, [shared]));
  });

  it("opens an upload session (202) when the source repository does not hold the blob", async () => {
    for (const [digest, from] of [
      [ABSENT_DIGEST, "mount/source"],
      [shared.digest, "mount/empty-source"],
    ]) {
      const res = await mount("mount/fallback", digest, from).expect(202);
      assert.match(res.headers.location, /^\/v2\/mount\/fallback\/blobs\/uploads\/[0-9a-f-]{36}$/);
    }
    await app.request().head(`/v2/mount/fallback/blobs/${shared.digest}`).expect(404);
  });

  it("mounts without from (201) from a repository holding the blob that the client may pull", async () => {
    const res = await mount("mount/no-from", shared.digest).expect(201);
    assert.equal(res.headers.location, `/v2/mount/no-from/blobs/${shared.digest}`);
    await app.request().head(`/v2/mount/no-from/blobs/${shared.digest}`).expect(200);
  });

  it("opens an upload session (202) for a mount without from when only repositories the client may not pull hold the blob", async () => {
    const res = await mount("mount/no-from-thief", secret.digest).expect(202);
    assert.match(res.headers.location, /^\/v2\/mount\/no-from-thief\/blobs\/uploads\//);
    await app.request().head(`/v2/mount/no-from-thief/blobs/${secret.digest}`).expect(404);
  });

  it("opens an upload session (202) instead of mounting from a repository the client may not pull", async () => {
    const res = await mount("mount/thief", shared.digest, "private/source").expect(202);
    assert.match(res.headers.location, /^\/v2\/mount\/thief\/blobs\/uploads\//);
    await app.request().head(`/v2/mount/thief/blobs/${shared.digest}`).expect(404);
  });

  it("completes the session a failed mount opened, as an ordinary upload", async () => {
    const content = blob("uploaded after a failed mount");
    const res = await mount("mount/then-upload", content.digest, "mount/source").expect(202);
    await app.request().put(`${res.headers.location}?digest=${content.digest}`).send(content.bytes).expect(201);
    await app.request().head(`/v2/mount/then-upload/blobs/${content.digest}`).expect(200);
  });

  it("refuses a malformed mount digest with 400 DIGEST_INVALID", async () => {
    const res = await mount("mount/target", "sha256:nothex", "mount/source").expect(400);
    assert.equal(errorCode(res), "DIGEST_INVALID");
  });
});
