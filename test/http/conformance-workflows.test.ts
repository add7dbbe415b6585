import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import { ABSENT_DIGEST, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, blob, descriptorOf, errorCode, manifest, putManifest, uniqueConfig, type Content } from "./oci-fixtures.js";

/**
 * The distribution-spec conformance suite's workflows (pull, push, content discovery,
 * content management) replayed in its order against one namespace, each step asserting
 * what the suite asserts.
 */
describe("the distribution-spec conformance workflows, in order", () => {
  let app: HostedApp;
  const NAME = "conformance/workflows";
  const CROSSMOUNT = "conformance/crossmount";
  const layer = blob(randomBytes(200));
  const configs = Array.from({ length: 5 }, () => uniqueConfig());
  /** Like the suite's manifests: config descriptors carry `data` and a field the spec does not know. */
  const manifests = configs.map((config) =>
    manifest({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { ...descriptorOf(config, "application/vnd.oci.image.config.v1+json"), data: config.bytes.toString("base64"), newUnspecifiedField: "aGVsbG8gd29ybGQ=" },
      layers: [descriptorOf(layer, "application/vnd.oci.image.layer.v1.tar+gzip")],
    }),
  );
  const put = (path: string, content: Content) => app.request().put(path).set("Content-Type", "application/octet-stream").send(content.bytes);
  const session = async (name = NAME) => (await app.request().post(`/v2/${name}/blobs/uploads/`).expect(202)).headers.location as string;

  before(async () => {
    app = await startHostedApp();
  });
  after(() => app.close());

  describe("pull", () => {
    it("is set up by pushing a config, a layer and a tagged manifest", async () => {
      await put(`${await session()}?digest=${configs[0].digest}`, configs[0]).expect(201);
      await put(`${await session()}?digest=${layer.digest}`, layer).expect(201);
      await putManifest(app, NAME, "tagtest0", manifests[0].bytes, OCI_MANIFEST).expect(201);
    });

    it("answers blob HEAD/GET with 404 when absent and 200 with the digest when present", async () => {
      await app.request().head(`/v2/${NAME}/blobs/${ABSENT_DIGEST}`).expect(404);
      await app.request().get(`/v2/${NAME}/blobs/${ABSENT_DIGEST}`).expect(404);
      const head = await app.request().head(`/v2/${NAME}/blobs/${configs[0].digest}`).expect(200);
      assert.equal(head.headers["docker-content-digest"], configs[0].digest);
      await app.request().get(`/v2/${NAME}/blobs/${configs[0].digest}`).expect(200);
    });

    it("answers manifest HEAD/GET with 404 when absent and 200 by digest and by tag", async () => {
      await app.request().head(`/v2/${NAME}/manifests/.INVALID_MANIFEST_NAME`).expect(404);
      await app.request().get(`/v2/${NAME}/manifests/.INVALID_MANIFEST_NAME`).expect(404);
      for (const reference of [manifests[0].digest, "tagtest0"]) {
        const head = await app.request().head(`/v2/${NAME}/manifests/${reference}`).set("Accept", OCI_MANIFEST).expect(200);
        assert.equal(head.headers["docker-content-digest"], manifests[0].digest);
        await app.request().get(`/v2/${NAME}/manifests/${reference}`).set("Accept", OCI_MANIFEST).expect(200);
      }
    });

    it("answers a bad manifest PUT with 400 and an error code from the spec", async () => {
      const res = await putManifest(app, NAME, "sha256:totallywrong", "blablabla", OCI_MANIFEST).expect(400);
      assert.ok(["DIGEST_INVALID", "MANIFEST_INVALID", "NAME_INVALID", "TAG_INVALID"].includes(errorCode(res)));
    });
  });

  describe("push", () => {
    const blobA = blob(randomBytes(42));
    const blobB = blob(randomBytes(42));
    let chunkSession = "";

    it("takes a streamed PATCH, then a PUT with the digest and no body", async () => {
      const location = await session();
      const patched = await app.request().patch(location).set("Content-Type", "application/octet-stream").send(blobA.bytes).expect(202);
      await app.request().put(`${patched.headers.location}?digest=${blobA.digest}`).set("Content-Length", "0").expect(201);
    });

    it("takes a single POST with the digest, and a POST then PUT", async () => {
      await app.request().get(`/v2/${NAME}/blobs/${configs[1].digest}`).expect(404);
      const single = await app.request().post(`/v2/${NAME}/blobs/uploads/?digest=${configs[1].digest}`).set("Content-Type", "application/octet-stream").send(configs[1].bytes);
      assert.ok([201, 202].includes(single.status));
      assert.ok(single.headers.location);
      await app.request().get(`/v2/${NAME}/blobs/${configs[1].digest}`).expect(single.status === 201 ? 200 : 404);
      await put(`${await session()}?digest=${configs[1].digest}`, configs[1]).expect(201);
      await app.request().get(`/v2/${NAME}/blobs/${configs[1].digest}`).expect(200);
    });

    it("answers an out-of-order first chunk with 416", async () => {
      const location = await session();
      await app.request().patch(location).set("Content-Range", "21-41").send(blobB.bytes.subarray(21)).expect(416);
    });

    it("takes a first chunk with 202 and Range 0-20, refuses it again with 416, and reports Range 0-20 on GET", async () => {
      chunkSession = await session();
      const first = await app.request().patch(chunkSession).set("Content-Range", "0-20").send(blobB.bytes.subarray(0, 21)).expect(202);
      assert.equal(first.headers.range, "0-20");
      await app.request().patch(chunkSession).set("Content-Range", "0-20").send(blobB.bytes.subarray(0, 21)).expect(416);
      const status = await app.request().get(chunkSession).expect(204);
      assert.ok(status.headers.location);
      assert.equal(status.headers.range, "0-20");
    });

    it("takes the second chunk and completes on PUT with the digest", async () => {
      const second = await app.request().patch(chunkSession).set("Content-Range", "21-41").send(blobB.bytes.subarray(21)).expect(202);
      await app.request().put(`${second.headers.location}?digest=${blobB.digest}`).set("Content-Length", "0").expect(201);
    });

    it("mounts across repositories: 202 without from, 201 from the namespace, 200 on GET there", async () => {
      await app.request().post(`/v2/${CROSSMOUNT}/blobs/uploads/?mount=${ABSENT_DIGEST}`).expect(202);
      const mounted = await app.request().post(`/v2/${CROSSMOUNT}/blobs/uploads/?mount=${blobA.digest}&from=${NAME}`).expect(201);
      assert.equal(mounted.headers.location, `/v2/${CROSSMOUNT}/blobs/${blobA.digest}`);
      await app.request().get(mounted.headers.location).expect(200);
    });

    it("takes a manifest under four tags and one with no layers, then serves it by digest", async () => {
      await app.request().get(`/v2/${NAME}/manifests/.INVALID_MANIFEST_NAME`).expect(404);
      for (let i = 0; i < 4; i++) {
        const res = await putManifest(app, NAME, `test${i}`, manifests[1].bytes, OCI_MANIFEST).expect(201);
        assert.ok(res.headers.location);
      }
      const emptyLayers = manifest({ schemaVersion: 2, config: descriptorOf(configs[1], "application/vnd.oci.image.config.v1+json"), layers: [] });
      await putManifest(app, NAME, "emptylayer", emptyLayers.bytes, OCI_MANIFEST).expect(201);
      await app.request().get(`/v2/${NAME}/manifests/${manifests[1].digest}`).set("Accept", OCI_MANIFEST).expect(200);
    });
  });

  describe("content discovery", () => {
    const emptyJson = blob("{}");
    const refBlobA = blob("NHL Peanut Butter on my NHL bagel");
    const refBlobB = blob("NBA Strawberry Jam on my NBA croissant");
    const typeA = "application/vnd.nhl.peanut.butter.bagel";
    const typeB = "application/vnd.nba.strawberry.jam.croissant";
    const subject = () => descriptorOf(manifests[4], OCI_MANIFEST);
    const configArtifact = (type: string, content: Content, note: string) =>
      manifest({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptorOf(content, type), subject: subject(), layers: [descriptorOf(emptyJson, OCI_EMPTY)], annotations: { "org.opencontainers.conformance.test": note } });
    const layerArtifact = (type: string, content: Content, note: string | undefined, about = subject()) =>
      manifest({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: type,
        config: descriptorOf(emptyJson, OCI_EMPTY),
        subject: about,
        layers: [descriptorOf(content, type)],
        ...(note ? { annotations: { "org.opencontainers.conformance.test": note } } : {}),
      });

    it("is set up with four tags, referrers before and after their subject, and one to a missing subject", async () => {
      await put(`${await session()}?digest=${configs[2].digest}`, configs[2]).expect(201);
      for (let i = 0; i < 4; i++) await putManifest(app, NAME, `test${i}`, manifests[2].bytes, OCI_MANIFEST).expect(201);
      for (const content of [emptyJson, refBlobA]) await put(`${await session()}?digest=${content.digest}`, content).expect(201);
      const beforeSubject = [configArtifact(typeA, refBlobA, "test config a"), layerArtifact(typeA, refBlobA, "test layer a")];
      const index = manifest({ schemaVersion: 2, mediaType: OCI_INDEX, artifactType: "application/vnd.food.stand", subject: subject(), manifests: beforeSubject.map((m) => descriptorOf(m, OCI_MANIFEST)), annotations: { "org.opencontainers.conformance.test": "test index" } });
      for (const referrer of [...beforeSubject, index]) {
        const res = await putManifest(app, NAME, referrer.digest, referrer.bytes, referrer.mediaType).expect(201);
        assert.equal(res.headers["oci-subject"], manifests[4].digest);
      }
      await put(`${await session()}?digest=${configs[4].digest}`, configs[4]).expect(201);
      await putManifest(app, NAME, "tagtest0", manifests[4].bytes, OCI_MANIFEST).expect(201);
      await put(`${await session()}?digest=${refBlobB.digest}`, refBlobB).expect(201);
      for (const referrer of [configArtifact(typeB, refBlobB, "test config b"), layerArtifact(typeB, refBlobB, "test layer b")]) {
        const res = await putManifest(app, NAME, referrer.digest, referrer.bytes, OCI_MANIFEST).expect(201);
        assert.equal(res.headers["oci-subject"], manifests[4].digest);
      }
      const orphan = layerArtifact(typeB, refBlobB, undefined, descriptorOf(manifests[3], OCI_MANIFEST));
      const res = await putManifest(app, NAME, orphan.digest, orphan.bytes, OCI_MANIFEST).expect(201);
      assert.equal(res.headers["oci-subject"], manifests[3].digest);
    });

    it("lists tags, limits them with n, and continues after last", async () => {
      const all = (await app.request().get(`/v2/${NAME}/tags/list`).expect(200)).body.tags as string[];
      const half = Math.floor(all.length / 2);
      const page = (await app.request().get(`/v2/${NAME}/tags/list?n=${half}`).expect(200)).body.tags as string[];
      assert.equal(page.length, half);
      const next = (await app.request().get(`/v2/${NAME}/tags/list?n=${half}&last=${page[half - 1]}`).expect(200)).body.tags as string[];
      assert.ok(next.length <= half && !next.includes(page[half - 1]));
    });

    it("lists referrers: none for an unknown digest, five for the subject, two per filtered type, one for the missing subject", async () => {
      const empty = await app.request().get(`/v2/${NAME}/referrers/${ABSENT_DIGEST}`).expect(200);
      assert.equal(empty.headers["content-type"], OCI_INDEX);
      assert.deepEqual(empty.body.manifests, []);
      const all = await app.request().get(`/v2/${NAME}/referrers/${manifests[4].digest}`).expect(200);
      assert.equal(all.body.manifests.length, 5);
      for (const descriptor of all.body.manifests) assert.equal(Object.keys(descriptor.annotations).length, 1);
      const filtered = await app.request().get(`/v2/${NAME}/referrers/${manifests[4].digest}`).query({ artifactType: typeA }).expect(200);
      assert.equal(filtered.headers["oci-filters-applied"], "artifactType");
      assert.equal(filtered.body.manifests.length, 2);
      const orphaned = await app.request().get(`/v2/${NAME}/referrers/${manifests[3].digest}`).expect(200);
      assert.equal(orphaned.body.manifests.length, 1);
    });
  });

  describe("content management", () => {
    let tagsBefore = 0;

    it("is set up with a config and a tagged manifest", async () => {
      await put(`${await session()}?digest=${configs[3].digest}`, configs[3]).expect(201);
      await putManifest(app, NAME, "tagtest0", manifests[3].bytes, OCI_MANIFEST).expect(201);
      tagsBefore = ((await app.request().get(`/v2/${NAME}/tags/list`).expect(200)).body.tags as string[]).length;
    });

    it("deletes the tag (202) and the manifest (202), after which GET is 404 and the tag list is shorter", async () => {
      await app.request().delete(`/v2/${NAME}/manifests/tagtest0`).expect(202);
      await app.request().delete(`/v2/${NAME}/manifests/${manifests[3].digest}`).expect(202);
      await app.request().get(`/v2/${NAME}/manifests/${manifests[3].digest}`).expect(404);
      const tags = (await app.request().get(`/v2/${NAME}/tags/list`).expect(200)).body.tags as string[];
      assert.ok(tags.length < tagsBefore);
    });

    it("answers a repeated tag delete with a spec error code", async () => {
      const res = await app.request().delete(`/v2/${NAME}/manifests/tagtest0`).expect(404);
      assert.equal(errorCode(res), "MANIFEST_UNKNOWN");
    });

    it("deletes a blob (202), after which GET is 404", async () => {
      await app.request().delete(`/v2/${NAME}/blobs/${configs[3].digest}`).expect(202);
      await app.request().get(`/v2/${NAME}/blobs/${configs[3].digest}`).expect(404);
    });
  });

  /**
   * The suite's optional sha512 data: blobs pushed under sha512 digests, a manifest and an
   * index that name them, pushed by their sha512 digests and tagged with ?tag= (a push by tag
   * would hash them as sha256), and a referrer whose subject is a sha512 digest.
   */
  describe("sha512 content", () => {
    const SHA512 = "conformance/sha512";
    const sha512Of = (bytes: Buffer) => `sha512:${createHash("sha512").update(bytes).digest("hex")}`;
    const content512 = (bytes: Buffer): Content => ({ bytes, digest: sha512Of(bytes) });
    const config = content512(uniqueConfig().bytes);
    const layer512 = content512(randomBytes(300));
    const image = manifest({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptorOf(config, "application/vnd.oci.image.config.v1+json"), layers: [descriptorOf(layer512, "application/vnd.oci.image.layer.v1.tar+gzip")] });
    const image512 = sha512Of(image.bytes);

    it("takes blobs under sha512 digests, monolithic and chunked, answering with their sha512 Docker-Content-Digest", async () => {
      const single = await app.request().post(`/v2/${SHA512}/blobs/uploads/?digest=${config.digest}`).set("Content-Type", "application/octet-stream").send(config.bytes).expect(201);
      assert.equal(single.headers["docker-content-digest"], config.digest);
      const location = await session(SHA512);
      const half = layer512.bytes.length / 2;
      const chunk = await app.request().patch(location).set("Content-Type", "application/octet-stream").set("Content-Range", `0-${half - 1}`).send(layer512.bytes.subarray(0, half)).expect(202);
      const done = await app.request().put(`${chunk.headers.location}?digest=${layer512.digest}`).set("Content-Type", "application/octet-stream").send(layer512.bytes.subarray(half)).expect(201);
      assert.equal(done.headers["docker-content-digest"], layer512.digest);
      const head = await app.request().head(`/v2/${SHA512}/blobs/${layer512.digest}`).expect(200);
      assert.equal(head.headers["docker-content-digest"], layer512.digest);
    });

    it("takes a manifest of sha512 descriptors by its sha512 digest with ?tag=, and serves it by tag under that digest", async () => {
      const res = await putManifest(app, SHA512, `${image512}?tag=sha512`, image.bytes, OCI_MANIFEST).expect(201);
      assert.equal(res.headers["docker-content-digest"], image512);
      assert.equal(res.headers["oci-tag"], "sha512");
      const byTag = await app.request().get(`/v2/${SHA512}/manifests/sha512`).expect(200);
      assert.equal(byTag.headers["docker-content-digest"], image512);
      await app.request().head(`/v2/${SHA512}/manifests/${image512}`).expect(200);
    });

    it("takes an index of a sha512 manifest and a referrer whose subject is a sha512 digest, and lists the referrer", async () => {
      const index = manifest({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: image512, size: image.bytes.length, platform: { os: "linux", architecture: "amd64" } }] });
      const indexRes = await putManifest(app, SHA512, `${sha512Of(index.bytes)}?tag=sha512-index`, index.bytes, OCI_INDEX).expect(201);
      assert.equal(indexRes.headers["docker-content-digest"], sha512Of(index.bytes));
      const referrer = manifest({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: "application/vnd.example.sbom",
        config: descriptorOf(config, "application/vnd.oci.image.config.v1+json"),
        layers: [descriptorOf(layer512, "application/vnd.oci.image.layer.v1.tar+gzip")],
        subject: { mediaType: OCI_MANIFEST, digest: image512, size: image.bytes.length },
      });
      const referrerRes = await putManifest(app, SHA512, sha512Of(referrer.bytes), referrer.bytes, OCI_MANIFEST).expect(201);
      assert.equal(referrerRes.headers["oci-subject"], image512);
      const listed = await app.request().get(`/v2/${SHA512}/referrers/${image512}`).expect(200);
      assert.deepEqual((listed.body.manifests as { digest: string }[]).map((d) => d.digest), [sha512Of(referrer.bytes)]);
    });

    it("deletes a manifest and a blob by their sha512 digests", async () => {
      await app.request().delete(`/v2/${SHA512}/manifests/${image512}`).expect(202);
      await app.request().get(`/v2/${SHA512}/manifests/${image512}`).expect(404);
      await app.request().delete(`/v2/${SHA512}/blobs/${layer512.digest}`).expect(202);
      await app.request().get(`/v2/${SHA512}/blobs/${layer512.digest}`).expect(404);
    });
  });
});
