import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import {
  ABSENT_DIGEST,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_INDEX,
  OCI_MANIFEST,
  blob,
  descriptorOf,
  errorCode,
  imageManifest,
  indexManifest,
  manifest,
  pushBlob,
  pushImage,
  putManifest,
  rawBytes,
  sha256,
  uniqueConfig,
  type Content,
} from "./oci-fixtures.js";

const NAME = "push/manifests";

describe("pushing manifests", () => {
  let app: HostedApp;
  let config: Content;
  let layer: Content;

  before(async () => {
    app = await startHostedApp();
    config = uniqueConfig();
    layer = blob("layer for manifest pushes");
    await pushBlob(app, NAME, config);
    await pushBlob(app, NAME, layer);
  });
  after(() => app.close());

  it("stores a manifest PUT by tag with 201, a Location by digest and Docker-Content-Digest", async () => {
    const image = imageManifest(config, [layer], { annotations: { purpose: "by tag" } });
    const res = await putManifest(app, NAME, "by-tag", image.bytes, OCI_MANIFEST).expect(201);
    assert.equal(res.headers.location, `/v2/${NAME}/manifests/${image.digest}`);
    assert.equal(res.headers["docker-content-digest"], image.digest);
    await app.request().get(res.headers.location).expect(200);
    await app.request().get(`/v2/${NAME}/manifests/by-tag`).expect(200);
  });

  it("stores one manifest under several tags", async () => {
    const image = imageManifest(config, [layer], { annotations: { purpose: "many tags" } });
    for (const tag of ["test0", "test1", "test2", "test3"]) {
      const res = await putManifest(app, NAME, tag, image.bytes, OCI_MANIFEST).expect(201);
      assert.equal(res.headers["docker-content-digest"], image.digest);
    }
    const tags = (await app.request().get(`/v2/${NAME}/tags/list`).expect(200)).body.tags as string[];
    for (const tag of ["test0", "test1", "test2", "test3"]) assert.ok(tags.includes(tag), tag);
  });

  it("stores a manifest PUT by digest without tagging it", async () => {
    const image = imageManifest(config, [layer], { annotations: { purpose: "by digest" } });
    const res = await putManifest(app, NAME, image.digest, image.bytes, OCI_MANIFEST).expect(201);
    assert.equal(res.headers.location, `/v2/${NAME}/manifests/${image.digest}`);
    assert.equal(res.headers["docker-content-digest"], image.digest);
    await app.request().head(`/v2/${NAME}/manifests/${image.digest}`).expect(200);
    const tags = (await app.request().get(`/v2/${NAME}/tags/list`).expect(200)).body.tags as string[];
    assert.ok(!tags.includes(image.digest));
  });

  it("refuses a PUT by digest whose body hashes differently with 400 DIGEST_INVALID, storing nothing", async () => {
    const image = imageManifest(config, [layer], { annotations: { purpose: "mismatch" } });
    const res = await putManifest(app, NAME, ABSENT_DIGEST, image.bytes, OCI_MANIFEST).expect(400);
    assert.equal(errorCode(res), "DIGEST_INVALID");
    await app.request().head(`/v2/${NAME}/manifests/${image.digest}`).expect(404);
    await app.request().head(`/v2/${NAME}/manifests/${ABSENT_DIGEST}`).expect(404);
  });

  it("keeps the pushed bytes exactly: whitespace, key order, unknown fields and non-ASCII text", async () => {
    const text =
      `{"mediaType":"${OCI_MANIFEST}",  "schemaVersion":2,\n "config":${JSON.stringify({ ...descriptorOf(config, "application/vnd.oci.image.config.v1+json"), data: config.bytes.toString("base64") })},` +
      `"layers":[${JSON.stringify(descriptorOf(layer, "application/vnd.oci.image.layer.v1.tar+gzip"))}],` +
      `"annotations":{"note":"ünïcødé ☃"},"x-unknown-field":[1,2,3]}\n\n`;
    const bytes = Buffer.from(text);
    const res = await putManifest(app, NAME, "exact", bytes, OCI_MANIFEST).expect(201);
    assert.equal(res.headers["docker-content-digest"], sha256(bytes));
    const pulled = await app.request().get(`/v2/${NAME}/manifests/exact`).buffer(true).parse(rawBytes).expect(200);
    assert.ok(bytes.equals(pulled.body as Buffer));
  });

  it("accepts an image manifest with no layers", async () => {
    await putManifest(app, NAME, "no-layers", imageManifest(config, []).bytes, OCI_MANIFEST).expect(201);
  });

  it("accepts a manifest without a mediaType field, typed by its Content-Type", async () => {
    const document = { schemaVersion: 2, config: descriptorOf(config, "application/vnd.oci.image.config.v1+json"), layers: [] };
    const res = await putManifest(app, NAME, "untyped", manifest(document, OCI_MANIFEST).bytes, OCI_MANIFEST).expect(201);
    const pulled = await app.request().head(res.headers.location).expect(200);
    assert.equal(pulled.headers["content-type"], OCI_MANIFEST);
  });

  it("treats an empty mediaType field as absent", async () => {
    const document = { schemaVersion: 2, mediaType: "", config: descriptorOf(config, "application/vnd.oci.image.config.v1+json"), layers: [] };
    await putManifest(app, NAME, "empty-media-type", manifest(document, OCI_MANIFEST).bytes, OCI_MANIFEST).expect(201);
  });

  it("ignores parameters on the Content-Type", async () => {
    const image = imageManifest(config, [layer], { annotations: { purpose: "parameters" } });
    await putManifest(app, NAME, "parameters", image.bytes, `${OCI_MANIFEST}; charset=utf-8`).expect(201);
  });

  it("stores Docker schema2 manifests and manifest lists", async () => {
    const docker = imageManifest(config, [layer], { mediaType: DOCKER_MANIFEST });
    await putManifest(app, NAME, "docker", docker.bytes, DOCKER_MANIFEST).expect(201);
    const list = indexManifest([docker], { mediaType: DOCKER_MANIFEST_LIST });
    await putManifest(app, NAME, "docker-list", list.bytes, DOCKER_MANIFEST_LIST).expect(201);
    const res = await app.request().head(`/v2/${NAME}/manifests/docker-list`).expect(200);
    assert.equal(res.headers["content-type"], DOCKER_MANIFEST_LIST);
  });

  describe("with missing content", () => {
    it("refuses a manifest whose layer is not in the repository with 400 MANIFEST_BLOB_UNKNOWN", async () => {
      const missing = blob("never uploaded layer");
      const res = await putManifest(app, NAME, "missing-layer", imageManifest(config, [layer, missing]).bytes, OCI_MANIFEST).expect(400);
      assert.equal(errorCode(res), "MANIFEST_BLOB_UNKNOWN");
      assert.deepEqual(res.body.errors[0].detail, { digest: missing.digest });
      await app.request().head(`/v2/${NAME}/manifests/missing-layer`).expect(404);
    });

    it("refuses a manifest whose config is not in the repository with 400 MANIFEST_BLOB_UNKNOWN", async () => {
      const res = await putManifest(app, NAME, "missing-config", imageManifest(uniqueConfig(), [layer]).bytes, OCI_MANIFEST).expect(400);
      assert.equal(errorCode(res), "MANIFEST_BLOB_UNKNOWN");
    });

    it("refuses a manifest whose blobs only another repository holds", async () => {
      const elsewhere = blob("layer in another repository");
      await pushBlob(app, "push/elsewhere", elsewhere);
      const res = await putManifest(app, NAME, "foreign-layer", imageManifest(config, [elsewhere]).bytes, OCI_MANIFEST).expect(400);
      assert.equal(errorCode(res), "MANIFEST_BLOB_UNKNOWN");
    });

    it("refuses an index whose child manifest is not in the repository with 400 MANIFEST_BLOB_UNKNOWN", async () => {
      const child = imageManifest(config, [layer], { annotations: { purpose: "never pushed child" } });
      const res = await putManifest(app, NAME, "missing-child", indexManifest([child]).bytes, OCI_INDEX).expect(400);
      assert.equal(errorCode(res), "MANIFEST_BLOB_UNKNOWN");
      assert.deepEqual(res.body.errors[0].detail, { digest: child.digest });
    });

    it("accepts a layer with urls (non-distributable) that the registry does not hold", async () => {
      const foreign = blob("foreign layer content");
      const document = {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: descriptorOf(config, "application/vnd.oci.image.config.v1+json"),
        layers: [{ ...descriptorOf(foreign, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"), urls: ["https://example.com/layer"] }],
      };
      await putManifest(app, NAME, "foreign-urls", manifest(document).bytes, OCI_MANIFEST).expect(201);
    });
  });

  describe("invalid manifests", () => {
    const valid = () => ({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptorOf(config, "application/vnd.oci.image.config.v1+json"),
      layers: [descriptorOf(layer, "application/vnd.oci.image.layer.v1.tar+gzip")],
    });
    const invalid: [string, () => string][] = [
      ["a body that is not JSON", () => "blablabla"],
      ["an empty body", () => ""],
      ["a JSON array", () => "[]"],
      ["JSON null", () => "null"],
      ["a missing schemaVersion", () => JSON.stringify({ ...valid(), schemaVersion: undefined })],
      ["schemaVersion 1", () => JSON.stringify({ ...valid(), schemaVersion: 1 })],
      ["a missing config", () => JSON.stringify({ ...valid(), config: undefined })],
      ["a missing layers array", () => JSON.stringify({ ...valid(), layers: undefined })],
      ["a layer without a digest", () => JSON.stringify({ ...valid(), layers: [{ mediaType: "x", size: 1 }] })],
      ["a layer with a malformed digest", () => JSON.stringify({ ...valid(), layers: [{ mediaType: "x", size: 1, digest: "sha256:xyz" }] })],
      ["a layer with a negative size", () => JSON.stringify({ ...valid(), layers: [{ ...valid().layers[0], size: -1 }] })],
      ["a layer with a fractional size", () => JSON.stringify({ ...valid(), layers: [{ ...valid().layers[0], size: 1.5 }] })],
      ["a layer without a mediaType", () => JSON.stringify({ ...valid(), layers: [{ digest: layer.digest, size: layer.bytes.length }] })],
      ["a subject that is not a descriptor", () => JSON.stringify({ ...valid(), subject: "sha256:abc" })],
      ["an unsupported mediaType", () => JSON.stringify({ ...valid(), mediaType: "application/vnd.example.unknown+json" })],
      ["an index without a manifests array", () => JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX })],
    ];
    for (const [what, body] of invalid) {
      it(`refuses ${what} with 400 MANIFEST_INVALID`, async () => {
        const res = await putManifest(app, NAME, "invalid", body(), OCI_MANIFEST);
        assert.equal(res.status, 400, res.text);
        assert.equal(errorCode(res), "MANIFEST_INVALID");
      });
    }

    it("refuses a Content-Type that differs from the manifest's mediaType with 400 MANIFEST_INVALID", async () => {
      const res = await putManifest(app, NAME, "mismatch", JSON.stringify(valid()), DOCKER_MANIFEST).expect(400);
      assert.equal(errorCode(res), "MANIFEST_INVALID");
    });

    it("refuses a manifest with neither mediaType nor a manifest Content-Type", async () => {
      const { mediaType: _, ...untyped } = valid();
      const res = await putManifest(app, NAME, "untyped", JSON.stringify(untyped), "application/octet-stream").expect(400);
      assert.equal(errorCode(res), "MANIFEST_INVALID");
    });

    it("leaves the tag untouched when a push to it is refused", async () => {
      const good = await pushImage(app, NAME, "stays");
      await putManifest(app, NAME, "stays", "blablabla", OCI_MANIFEST).expect(400);
      const res = await app.request().head(`/v2/${NAME}/manifests/stays`).expect(200);
      assert.equal(res.headers["docker-content-digest"], good.manifest.digest);
    });
  });

  describe("size limit", () => {
    const padded = (size: number) => {
      const document = valid4MiB();
      const base = JSON.stringify(document).length;
      document.annotations = { pad: "x".repeat(size - base - '"annotations":{"pad":""},'.length) };
      const text = JSON.stringify(document);
      assert.equal(text.length, size);
      return text;
    };
    const valid4MiB = (): Record<string, unknown> => ({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptorOf(config, "application/vnd.oci.image.config.v1+json"),
      layers: [],
    });

    it("accepts a manifest of exactly 4 MiB", async () => {
      await putManifest(app, NAME, "four-mib", padded(4 * 1024 * 1024), OCI_MANIFEST).expect(201);
    });

    it("refuses a manifest over 4 MiB with 413", async () => {
      const res = await putManifest(app, NAME, "too-big", padded(4 * 1024 * 1024 + 1), OCI_MANIFEST).expect(413);
      assert.equal(errorCode(res), "SIZE_INVALID");
      await app.request().head(`/v2/${NAME}/manifests/too-big`).expect(404);
    });

    it("refuses an oversize manifest sent without Content-Length with 413", async () => {
      const text = padded(4 * 1024 * 1024 + 1);
      const res = await fetch(`${app.url}/v2/${NAME}/manifests/too-big-streamed`, {
        method: "PUT",
        headers: { "Content-Type": OCI_MANIFEST },
        body: new ReadableStream({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(text));
            controller.close();
          },
        }),
        duplex: "half",
      } as RequestInit);
      assert.equal(res.status, 413);
    });
  });
});
