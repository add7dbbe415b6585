import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import {
  ABSENT_DIGEST,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_MANIFEST,
  blob,
  descriptorOf,
  errorCode,
  imageManifest,
  indexManifest,
  pushBlob,
  pushImage,
  putManifest,
  type Descriptor,
  type Manifest,
  type PushedImage,
} from "./oci-fixtures.js";

const NAME = "discover/referrers";
const TYPE_A = "application/vnd.nhl.peanut.butter.bagel";
const TYPE_B = "application/vnd.nba.strawberry.jam.croissant";
const TYPE_INDEX = "application/vnd.example.bundle.v1";
const ANNOTATION = "org.opencontainers.conformance.test";

const emptyJson = blob("{}");
const refBlobA = blob("NHL Peanut Butter on my NHL bagel");
const refBlobB = blob("NBA Strawberry Jam on my NBA croissant");

interface Referrer {
  manifest: Manifest;
  /** The descriptor the referrers API must list for it. */
  expected: Descriptor;
}

/** An artifact typed by its config's mediaType (no artifactType field). */
function configTypedArtifact(subject: Descriptor, type: string, content: typeof refBlobA, note: string): Referrer {
  const manifest = imageManifest(content, [emptyJson], { configMediaType: type, layerMediaType: OCI_EMPTY, subject, annotations: { [ANNOTATION]: note } });
  return { manifest, expected: { ...descriptorOf(manifest, OCI_MANIFEST), artifactType: type, annotations: { [ANNOTATION]: note } } };
}

/** An artifact with an artifactType field and the empty config. */
function typedArtifact(subject: Descriptor, type: string, content: typeof refBlobA, annotations?: Record<string, string>): Referrer {
  const manifest = imageManifest(emptyJson, [content], { artifactType: type, configMediaType: OCI_EMPTY, layerMediaType: type, subject, annotations });
  const expected: Descriptor = { ...descriptorOf(manifest, OCI_MANIFEST), artifactType: type };
  if (annotations) expected.annotations = annotations;
  return { manifest, expected };
}

const push = (app: HostedApp, reference: string, manifest: Manifest) => putManifest(app, NAME, reference, manifest.bytes, manifest.mediaType);

const sortByDigest = (descriptors: Descriptor[]) => [...descriptors].sort((a, b) => (a.digest < b.digest ? -1 : 1));

describe("the referrers API", () => {
  let app: HostedApp;
  let subject: PushedImage;
  let subjectDescriptor: Descriptor;
  const referrers: Referrer[] = [];
  let orphan: Referrer;
  let orphanSubject: Descriptor;
  const subjectHeaders: string[] = [];

  before(async () => {
    app = await startHostedApp();
    for (const content of [emptyJson, refBlobA, refBlobB]) await pushBlob(app, NAME, content);
    // The subject's content exists but its manifest is pushed only after some of its referrers.
    subject = await pushImage(app, "discover/staging", "subject");
    for (const content of [subject.config, ...subject.layers]) await pushBlob(app, NAME, content);
    subjectDescriptor = descriptorOf(subject.manifest, OCI_MANIFEST);

    const before = [
      configTypedArtifact(subjectDescriptor, TYPE_A, refBlobA, "test config a"),
      typedArtifact(subjectDescriptor, TYPE_A, refBlobA, { [ANNOTATION]: "test layer a" }),
    ];
    for (const referrer of before) {
      subjectHeaders.push((await push(app, referrer.manifest.digest, referrer.manifest).expect(201)).headers["oci-subject"]);
    }
    const index = indexManifest(before.map((r) => r.manifest), { artifactType: TYPE_INDEX, subject: subjectDescriptor, annotations: { [ANNOTATION]: "test index" } });
    subjectHeaders.push((await push(app, index.digest, index).expect(201)).headers["oci-subject"]);
    referrers.push(...before, {
      manifest: index,
      expected: { ...descriptorOf(index, OCI_INDEX), artifactType: TYPE_INDEX, annotations: { [ANNOTATION]: "test index" } },
    });

    await push(app, "tagtest0", subject.manifest).expect(201);

    const after = [
      configTypedArtifact(subjectDescriptor, TYPE_B, refBlobB, "test config b"),
      typedArtifact(subjectDescriptor, TYPE_B, refBlobB, { [ANNOTATION]: "test layer b" }),
    ];
    for (const referrer of after) {
      subjectHeaders.push((await push(app, referrer.manifest.digest, referrer.manifest).expect(201)).headers["oci-subject"]);
    }
    referrers.push(...after);

    const neverPushed = imageManifest(subject.config, subject.layers, { annotations: { never: "pushed" } });
    orphanSubject = descriptorOf(neverPushed, OCI_MANIFEST);
    orphan = typedArtifact(orphanSubject, TYPE_B, refBlobB);
    subjectHeaders.push((await push(app, orphan.manifest.digest, orphan.manifest).expect(201)).headers["oci-subject"]);
  });
  after(() => app.close());

  it("answers a push with a subject, before and after the subject exists, with OCI-Subject", () => {
    assert.deepEqual(subjectHeaders, [...Array(5).fill(subject.manifest.digest), orphanSubject.digest]);
  });

  it("sends no OCI-Subject for a manifest without a subject", async () => {
    const res = await push(app, "plain", imageManifest(emptyJson, [refBlobA], { configMediaType: OCI_EMPTY })).expect(201);
    assert.equal(res.headers["oci-subject"], undefined);
  });

  it("lists every referrer as an OCI image index with artifactType and annotations in each descriptor", async () => {
    const res = await app.request().get(`/v2/${NAME}/referrers/${subject.manifest.digest}`).expect(200);
    assert.equal(res.headers["content-type"], OCI_INDEX);
    assert.equal(res.body.schemaVersion, 2);
    assert.equal(res.body.mediaType, OCI_INDEX);
    assert.deepEqual(sortByDigest(res.body.manifests), sortByDigest(referrers.map((r) => r.expected)));
    assert.equal(res.headers["oci-filters-applied"], undefined);
  });

  it("filters by artifactType and says so in OCI-Filters-Applied", async () => {
    for (const [type, count] of [[TYPE_A, 2], [TYPE_B, 2], [TYPE_INDEX, 1], ["application/vnd.none", 0]] as const) {
      const res = await app.request().get(`/v2/${NAME}/referrers/${subject.manifest.digest}`).query({ artifactType: type }).expect(200);
      assert.equal(res.headers["oci-filters-applied"], "artifactType");
      assert.equal(res.body.manifests.length, count, type);
      for (const descriptor of res.body.manifests as Descriptor[]) assert.equal(descriptor.artifactType, type);
    }
  });

  it("treats an empty artifactType filter as no filter", async () => {
    const res = await app.request().get(`/v2/${NAME}/referrers/${subject.manifest.digest}?artifactType=`).expect(200);
    assert.equal(res.body.manifests.length, referrers.length);
    assert.equal(res.headers["oci-filters-applied"], undefined);
  });

  it("lists a referrer whose subject was never pushed", async () => {
    const res = await app.request().get(`/v2/${NAME}/referrers/${orphanSubject.digest}`).expect(200);
    assert.deepEqual(res.body.manifests, [orphan.expected]);
  });

  it("answers a subject nothing refers to with 200 and an empty index", async () => {
    const res = await app.request().get(`/v2/${NAME}/referrers/${ABSENT_DIGEST}`).expect(200);
    assert.equal(res.headers["content-type"], OCI_INDEX);
    assert.deepEqual(res.body, { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
  });

  it("answers 200 with an empty index for a repository that does not exist", async () => {
    const res = await app.request().get(`/v2/discover/nowhere/referrers/${subject.manifest.digest}`).expect(200);
    assert.deepEqual(res.body.manifests, []);
  });

  it("keeps referrers per repository", async () => {
    const res = await app.request().get(`/v2/discover/staging/referrers/${subject.manifest.digest}`).expect(200);
    assert.deepEqual(res.body.manifests, []);
  });

  it("refuses an invalid digest with 400", async () => {
    for (const digest of ["sha256:xyz", "latest", `sha256:${"A".repeat(64)}`]) {
      const res = await app.request().get(`/v2/${NAME}/referrers/${digest}`);
      assert.equal(res.status, 400, digest);
      assert.equal(errorCode(res), "DIGEST_INVALID");
    }
  });

  it("omits artifactType for an index that has none, and annotations for a manifest that has none", async () => {
    const target = descriptorOf(blob("another subject"), OCI_MANIFEST);
    const untypedIndex = indexManifest([referrers[0].manifest], { subject: target });
    const unannotated = typedArtifact(target, TYPE_A, refBlobA);
    await push(app, untypedIndex.digest, untypedIndex).expect(201);
    await push(app, unannotated.manifest.digest, unannotated.manifest).expect(201);
    const res = await app.request().get(`/v2/${NAME}/referrers/${target.digest}`).expect(200);
    const byDigest = new Map((res.body.manifests as Descriptor[]).map((d) => [d.digest, d]));
    assert.deepEqual(byDigest.get(untypedIndex.digest), descriptorOf(untypedIndex, OCI_INDEX));
    assert.deepEqual(byDigest.get(unannotated.manifest.digest), unannotated.expected);
    assert.equal(byDigest.size, 2);
  });

  it("lists a referrer pushed twice, or by tag, once", async () => {
    const target = descriptorOf(blob("a subject referred to twice"), OCI_MANIFEST);
    const referrer = typedArtifact(target, TYPE_B, refBlobB);
    await push(app, referrer.manifest.digest, referrer.manifest).expect(201);
    const tagged = await push(app, "signature", referrer.manifest).expect(201);
    assert.equal(tagged.headers["oci-subject"], target.digest);
    const res = await app.request().get(`/v2/${NAME}/referrers/${target.digest}`).expect(200);
    assert.deepEqual(res.body.manifests, [referrer.expected]);
  });
});
