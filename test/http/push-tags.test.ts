import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type supertest from "supertest";
import { MAX_TAGS_PER_PUSH } from "../../server/http/manifest-handlers.js";
import { HOSTED_ROOT } from "../../server/storage/repository-metadata.js";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import { testStorageDriver } from "../support/storage-drivers.js";
import { OCI_MANIFEST, blob, errorCode, imageManifest, pushBlob, putManifest, rawBytes, uniqueConfig, type Content, type Manifest } from "./oci-fixtures.js";

const NAME = "push/tag-params";

/** Every line of a response header, as sent (supertest joins repeated headers with ", "). */
function headerLines(res: supertest.Response, name: string): string[] {
  return (res as unknown as { res: IncomingMessage }).res.headersDistinct[name] ?? [];
}

function sha512(data: Buffer): string {
  return `sha512:${createHash("sha512").update(data).digest("hex")}`;
}

/**
 * distribution-spec (after 1.1.0, opencontainers/distribution-spec#600): a manifest pushed by
 * digest with `tag` query parameters is tagged with each, and the answer carries one `OCI-Tag`
 * header per tag applied.
 */
describe("pushing a manifest with ?tag= parameters", () => {
  let app: HostedApp;
  let config: Content;
  let layer: Content;
  let images = 0;

  /** A manifest of its own for each test, over the blobs pushed once. */
  const freshImage = (): Manifest => imageManifest(config, [layer], { annotations: { n: String(++images) } });
  const tagOf = async (tag: string) => (await app.request().head(`/v2/${NAME}/manifests/${tag}`)).headers["docker-content-digest"] as string | undefined;
  const tagList = async () => ((await app.request().get(`/v2/${NAME}/tags/list`).expect(200)).body as { tags: string[] }).tags;

  before(async () => {
    app = await startHostedApp();
    config = uniqueConfig();
    layer = blob("layer for tag parameters");
    await pushBlob(app, NAME, config);
    await pushBlob(app, NAME, layer);
  });
  after(() => app.close());

  it("points every tag at a manifest pushed by digest, answering 201 with one OCI-Tag header per tag", async () => {
    const image = freshImage();
    const res = await putManifest(app, NAME, `${image.digest}?tag=1.2.3&tag=1.2&tag=1&tag=latest`, image.bytes, OCI_MANIFEST).expect(201);
    assert.deepEqual(headerLines(res, "oci-tag"), ["1.2.3", "1.2", "1", "latest"]);
    assert.equal(res.headers["docker-content-digest"], image.digest);
    assert.equal(res.headers.location, `/v2/${NAME}/manifests/${image.digest}`);
    for (const tag of ["1.2.3", "1.2", "1", "latest"]) assert.equal(await tagOf(tag), image.digest, tag);
    const pulled = await app.request().get(`/v2/${NAME}/manifests/1.2`).buffer(true).parse(rawBytes).expect(200);
    assert.ok(image.bytes.equals(pulled.body as Buffer), "the bytes pushed, byte for byte");
  });

  it("stores the manifest once, whatever the number of tags", async () => {
    const image = freshImage();
    const before = (await app.storage.metadata.manifests(NAME)).length;
    await putManifest(app, NAME, `${image.digest}?tag=once-a&tag=once-b&tag=once-c`, image.bytes, OCI_MANIFEST).expect(201);
    const manifests = await app.storage.metadata.manifests(NAME);
    assert.equal(manifests.length, before + 1);
    assert.equal(manifests.filter((d) => d.toString() === image.digest).length, 1);
  });

  it("takes the path's tag together with the ?tag= ones on a push by tag, naming each once", async () => {
    const image = freshImage();
    const res = await putManifest(app, NAME, "path-tag?tag=extra-a&tag=path-tag&tag=extra-b&tag=extra-a", image.bytes, OCI_MANIFEST).expect(201);
    assert.deepEqual(headerLines(res, "oci-tag"), ["path-tag", "extra-a", "extra-b"]);
    for (const tag of ["path-tag", "extra-a", "extra-b"]) assert.equal(await tagOf(tag), image.digest, tag);
  });

  it("moves tags that pointed at another manifest", async () => {
    const first = freshImage();
    const second = freshImage();
    await putManifest(app, NAME, `${first.digest}?tag=moving-a&tag=moving-b`, first.bytes, OCI_MANIFEST).expect(201);
    await putManifest(app, NAME, `${second.digest}?tag=moving-a&tag=moving-b`, second.bytes, OCI_MANIFEST).expect(201);
    assert.equal(await tagOf("moving-a"), second.digest);
    assert.equal(await tagOf("moving-b"), second.digest);
    await app.request().head(`/v2/${NAME}/manifests/${first.digest}`).expect(200);
  });

  const invalid: [what: string, query: string][] = [
    ["an empty tag", "tag=good-1&tag="],
    ["a tag starting with a dot", "tag=good-1&tag=.hidden"],
    ["a tag starting with a dash", "tag=-dash&tag=good-1"],
    ["a tag with a slash", "tag=good-1&tag=a%2Fb"],
    ["a tag with a space", "tag=good-1&tag=a%20b"],
    ["a tag of 129 characters", `tag=good-1&tag=${"a".repeat(129)}`],
  ];
  for (const [what, query] of invalid) {
    it(`refuses ${what} with 400 TAG_INVALID, storing neither the manifest nor any tag`, async () => {
      const image = freshImage();
      const res = await putManifest(app, NAME, `${image.digest}?${query}`, image.bytes, OCI_MANIFEST).expect(400);
      assert.equal(errorCode(res), "TAG_INVALID");
      await app.request().head(`/v2/${NAME}/manifests/${image.digest}`).expect(404);
      assert.ok(!(await tagList()).includes("good-1"));
    });
  }

  it(`takes ${MAX_TAGS_PER_PUSH} tags in one push (the spec asks for at least 10) and refuses more with 414 TAG_INVALID`, async () => {
    const image = freshImage();
    const many = Array.from({ length: MAX_TAGS_PER_PUSH }, (_, i) => `many-${i}`);
    const res = await putManifest(app, NAME, `${image.digest}?${many.map((t) => `tag=${t}`).join("&")}`, image.bytes, OCI_MANIFEST).expect(201);
    assert.equal(headerLines(res, "oci-tag").length, MAX_TAGS_PER_PUSH);
    const tooMany = freshImage();
    const refused = await putManifest(app, NAME, `${tooMany.digest}?${[...many, "one-more"].map((t) => `tag=${t}`).join("&")}`, tooMany.bytes, OCI_MANIFEST).expect(414);
    assert.equal(errorCode(refused), "TAG_INVALID");
    await app.request().head(`/v2/${NAME}/manifests/${tooMany.digest}`).expect(404);
    assert.equal(await tagOf("many-0"), image.digest);
  });

  it("tags a manifest pushed by its sha512 digest under that digest; a push by tag stays sha256", async () => {
    const image = freshImage();
    const digest512 = sha512(image.bytes);
    const res = await putManifest(app, NAME, `${digest512}?tag=sha512-a&tag=sha512-b`, image.bytes, OCI_MANIFEST).expect(201);
    assert.equal(res.headers["docker-content-digest"], digest512);
    assert.deepEqual(headerLines(res, "oci-tag"), ["sha512-a", "sha512-b"]);
    assert.equal(await tagOf("sha512-a"), digest512);
    await app.request().get(`/v2/${NAME}/manifests/${digest512}`).expect(200);

    const byTag = await putManifest(app, NAME, "sha256-tag", image.bytes, OCI_MANIFEST).expect(201);
    assert.equal(byTag.headers["docker-content-digest"], image.digest, "a tag carries no digest to match: sha256");
  });

  // The fault is a directory where a tag's record file goes: only a filesystem store can be given
  // one (a bucket holds a key and keys under it side by side), so the suites on S3 leave it out.
  if (testStorageDriver() === "filesystem") {
    it("moves every tag or none: when one tag cannot be written, those already moved are put back", async () => {
      const previous = freshImage();
      await putManifest(app, NAME, `${previous.digest}?tag=atomic-a`, previous.bytes, OCI_MANIFEST).expect(201);
      // A storage fault on the second tag's record: a directory where its file must go.
      await mkdir(join(app.root, HOSTED_ROOT, NAME, "_tags", "atomic-b"), { recursive: true });
      await writeFile(join(app.root, HOSTED_ROOT, NAME, "_tags", "atomic-b", "blocker"), "");

      const image = freshImage();
      const res = await putManifest(app, NAME, `${image.digest}?tag=atomic-a&tag=atomic-b&tag=atomic-c`, image.bytes, OCI_MANIFEST);
      assert.ok(res.status >= 500, `a storage failure is the registry's: ${res.status}`);
      assert.equal(await tagOf("atomic-a"), previous.digest, "the tag moved first is put back");
      assert.equal(await tagOf("atomic-c"), undefined, "the tag after the failure was never set");
    });
  }
});
