import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Digest } from "../../server/reference/digest.js";
import { RegistryError } from "../../server/registry/errors.js";
import { parseManifest } from "../../server/registry/manifest.js";
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from "../../server/registry/media-types.js";

const digest = (text: string) => Digest.of("sha256", text).toString();
const CONFIG = { mediaType: "application/vnd.oci.image.config.v1+json", digest: digest("config"), size: 6 };
const LAYER = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: digest("layer"), size: 5 };
const SUBJECT = { mediaType: OCI_MANIFEST, digest: digest("subject"), size: 100 };

const image = (extra: Record<string, unknown> = {}) => ({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: CONFIG, layers: [LAYER], ...extra });
const index = (extra: Record<string, unknown> = {}) => ({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [SUBJECT], ...extra });
const parse = (document: unknown, contentType: string | undefined) => parseManifest(Buffer.from(JSON.stringify(document)), contentType);

function assertInvalid(document: unknown, contentType: string | undefined = undefined): void {
  assert.throws(
    () => parse(document, contentType),
    (err: unknown) => err instanceof RegistryError && err.code === "MANIFEST_INVALID",
  );
}

describe("parseManifest", () => {
  it("names the config and layers of an image manifest as the blobs it needs", () => {
    const parsed = parse(image(), OCI_MANIFEST);
    assert.equal(parsed.mediaType, OCI_MANIFEST);
    assert.deepEqual(parsed.blobs.map(String), [CONFIG.digest, LAYER.digest]);
    assert.deepEqual(parsed.manifests, []);
  });

  it("names the children of an index as the manifests it needs, and no blobs", () => {
    const parsed = parse(index(), OCI_INDEX);
    assert.deepEqual(parsed.blobs, []);
    assert.deepEqual(parsed.manifests, [SUBJECT]);
  });

  it("parses Docker schema2 manifests and manifest lists", () => {
    assert.equal(parse(image({ mediaType: DOCKER_MANIFEST }), DOCKER_MANIFEST).mediaType, DOCKER_MANIFEST);
    assert.equal(parse(index({ mediaType: DOCKER_MANIFEST_LIST }), DOCKER_MANIFEST_LIST).mediaType, DOCKER_MANIFEST_LIST);
  });

  it("does not need non-distributable layers that carry urls, but does need those with an empty urls list", () => {
    const foreign = { ...LAYER, digest: digest("foreign"), urls: ["https://example.com/layer"] };
    const local = { ...LAYER, digest: digest("local"), urls: [] };
    assert.deepEqual(parse(image({ layers: [foreign, local] }), OCI_MANIFEST).blobs.map(String), [CONFIG.digest, local.digest]);
  });

  describe("artifactType, for the referrers API", () => {
    it("takes an image manifest's artifactType field", () => {
      assert.equal(parse(image({ artifactType: "application/vnd.example.sbom" }), OCI_MANIFEST).artifactType, "application/vnd.example.sbom");
    });

    it("falls back to the config mediaType for an image manifest with no or an empty artifactType", () => {
      assert.equal(parse(image(), OCI_MANIFEST).artifactType, CONFIG.mediaType);
      assert.equal(parse(image({ artifactType: "" }), OCI_MANIFEST).artifactType, CONFIG.mediaType);
    });

    it("takes an index's artifactType field and has none otherwise", () => {
      assert.equal(parse(index({ artifactType: "application/vnd.example.bundle" }), OCI_INDEX).artifactType, "application/vnd.example.bundle");
      assert.equal(parse(index(), OCI_INDEX).artifactType, undefined);
      assert.equal(parse(index({ artifactType: "" }), OCI_INDEX).artifactType, undefined);
    });
  });

  it("reads the subject digest and the annotations", () => {
    const parsed = parse(image({ subject: SUBJECT, annotations: { "org.example.note": "hello" } }), OCI_MANIFEST);
    assert.equal(parsed.subject?.toString(), SUBJECT.digest);
    assert.deepEqual(parsed.annotations, { "org.example.note": "hello" });
  });

  it("types a manifest without mediaType by its Content-Type, ignoring parameters and case", () => {
    const { mediaType: _, ...untyped } = image();
    assert.equal(parse(untyped, `${OCI_MANIFEST.toUpperCase()}; charset=utf-8`).mediaType, OCI_MANIFEST);
  });

  it("types a manifest with neither mediaType nor Content-Type by its shape", () => {
    const { mediaType: _image, ...untypedImage } = image();
    const { mediaType: _index, ...untypedIndex } = index();
    assert.equal(parse(untypedImage, undefined).mediaType, OCI_MANIFEST);
    assert.equal(parse(untypedIndex, undefined).mediaType, OCI_INDEX);
  });

  it("refuses a Content-Type that contradicts the mediaType field", () => {
    assertInvalid(image(), DOCKER_MANIFEST);
    assertInvalid(index(), OCI_MANIFEST);
  });

  const wrongTypes: [string, Record<string, unknown>][] = [
    ["a numeric mediaType", image({ mediaType: 7 })],
    ["a non-string artifactType", image({ artifactType: ["a"] })],
    ["annotations that are not a string map", image({ annotations: { count: 3 } })],
    ["annotations that are an array", image({ annotations: ["a"] })],
    ["descriptor annotations that are not a string map", image({ layers: [{ ...LAYER, annotations: { n: null } }] })],
    ["urls that are not a list of strings", image({ layers: [{ ...LAYER, urls: "https://example.com" }] })],
    ["a platform that is not an object", index({ manifests: [{ ...SUBJECT, platform: "linux/amd64" }] })],
    ["a subject without a digest", image({ subject: { mediaType: OCI_MANIFEST, size: 1 } })],
    ["a config with an unverifiable digest", image({ config: { ...CONFIG, digest: `sha384:${"a".repeat(96)}` } })],
    ["a size beyond 2^53", image({ layers: [{ ...LAYER, size: 2 ** 53 }] })],
    ["an index entry that is not an object", index({ manifests: ["sha256:abc"] })],
    ["layers that are not an array", image({ layers: {} })],
  ];
  for (const [what, document] of wrongTypes) {
    it(`refuses ${what}`, () => assertInvalid(document, document.mediaType === OCI_INDEX ? OCI_INDEX : undefined));
  }

  it("refuses a document that reads as both an image manifest and an index, as Distribution does since CVE-2021-41190", () => {
    assertInvalid(image({ manifests: [SUBJECT] }));
    assertInvalid(image({ mediaType: DOCKER_MANIFEST, manifests: [] }));
    assertInvalid(index({ layers: [LAYER] }), OCI_INDEX);
    assertInvalid(index({ config: CONFIG }), OCI_INDEX);
    assertInvalid(index({ mediaType: DOCKER_MANIFEST_LIST, layers: [] }));
  });

  it("refuses bodies that are not a JSON object of schemaVersion 2", () => {
    for (const text of ["", "blablabla", "[]", "null", "2", '"manifest"', "\uFEFF{}"]) {
      assert.throws(() => parseManifest(Buffer.from(text), OCI_MANIFEST), RegistryError, JSON.stringify(text));
    }
    assertInvalid(image({ schemaVersion: "2" }));
    assertInvalid(image({ schemaVersion: 1 }));
  });

  it("copes with deeply nested JSON without overflowing the stack", () => {
    const deep = `{"schemaVersion":2,"x":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
    assert.throws(() => parseManifest(Buffer.from(deep), OCI_MANIFEST), RegistryError);
  });
});
