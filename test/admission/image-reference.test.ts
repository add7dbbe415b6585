import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Digest } from "../../server/reference/digest.js";
import { ImageReference, ImageReferenceError } from "../../server/reference/image-reference.js";

const SHA = `sha256:${"ab".repeat(32)}`;

function parts(text: string) {
  const ref = ImageReference.parse(text);
  return { host: ref.host, repository: ref.repository, tag: ref.tag, digest: ref.digest?.toString() };
}

describe("image references: normalisation", () => {
  const cases: [string, { host: string; repository: string; tag?: string; digest?: string }][] = [
    ["nginx", { host: "docker.io", repository: "library/nginx" }],
    ["nginx:1.25", { host: "docker.io", repository: "library/nginx", tag: "1.25" }],
    ["library/nginx:1.25", { host: "docker.io", repository: "library/nginx", tag: "1.25" }],
    ["docker.io/nginx", { host: "docker.io", repository: "library/nginx" }],
    ["index.docker.io/nginx:1", { host: "docker.io", repository: "library/nginx", tag: "1" }],
    ["docker.io/bitnami/redis:7.2", { host: "docker.io", repository: "bitnami/redis", tag: "7.2" }],
    ["bitnami/redis", { host: "docker.io", repository: "bitnami/redis" }],
    ["registry.k8s.io/pause:3.9", { host: "registry.k8s.io", repository: "pause", tag: "3.9" }],
    ["ghcr.io/org/team/app@" + SHA, { host: "ghcr.io", repository: "org/team/app", digest: SHA }],
    ["nginx:latest@" + SHA, { host: "docker.io", repository: "library/nginx", tag: "latest", digest: SHA }],
    ["localhost/app", { host: "localhost", repository: "app" }],
    ["localhost:5000/team/app:v1", { host: "localhost:5000", repository: "team/app", tag: "v1" }],
    ["127.0.0.1:5000/app@" + SHA, { host: "127.0.0.1:5000", repository: "app", digest: SHA }],
    ["[::1]:5000/app:v1", { host: "[::1]:5000", repository: "app", tag: "v1" }],
    ["Registry/app", { host: "Registry", repository: "app" }],
    ["localhost:5000", { host: "docker.io", repository: "library/localhost", tag: "5000" }],
    ["my-registry.example.com:443/a/b_c/d__e/f-g--h:Tag_1.x-y", { host: "my-registry.example.com:443", repository: "a/b_c/d__e/f-g--h", tag: "Tag_1.x-y" }],
  ];
  for (const [text, expected] of cases) {
    it(`reads ${text} as ${expected.host}/${expected.repository}${expected.tag ? `:${expected.tag}` : ""}${expected.digest ? "@digest" : ""}`, () => {
      assert.deepEqual(parts(text), { tag: undefined, digest: undefined, ...expected });
    });
  }

  it("treats a missing tag and digest as :latest for pulling, but a digest alone as no tag", () => {
    assert.equal(ImageReference.parse("nginx").pullTag, "latest");
    assert.equal(ImageReference.parse("nginx").tag, undefined);
    assert.equal(ImageReference.parse("nginx:1.25").pullTag, "1.25");
    assert.equal(ImageReference.parse(`nginx@${SHA}`).pullTag, undefined);
    assert.equal(ImageReference.parse(`nginx:1.25@${SHA}`).pullTag, "1.25");
  });

  it("writes the normalised reference, and reads it back unchanged", () => {
    assert.equal(ImageReference.parse("nginx:1.25").toString(), "docker.io/library/nginx:1.25");
    assert.equal(ImageReference.parse("busybox").toString(), "docker.io/library/busybox");
    assert.equal(ImageReference.parse(`quay.io/a/b:c@${SHA}`).toString(), `quay.io/a/b:c@${SHA}`);
    assert.equal(ImageReference.parse("nginx").name, "docker.io/library/nginx");
  });

  it("pins a digest keeping the tag, and moves a reference to another host and path", () => {
    const digest = Digest.parse(SHA)!;
    const pinned = ImageReference.parse("nginx:1.25").pinned(digest);
    assert.equal(pinned.toString(), `docker.io/library/nginx:1.25@${SHA}`);
    assert.equal(pinned.movedTo("localhost:5000", "docker.io/library/nginx").toString(), `localhost:5000/docker.io/library/nginx:1.25@${SHA}`);
  });

  it("round-trips every reference built from the grammar", () => {
    const alnum = fc.stringMatching(/^[a-z0-9]{1,6}$/);
    const component = fc.tuple(alnum, fc.array(fc.tuple(fc.constantFrom(".", "_", "__", "-", "--"), alnum), { maxLength: 2 })).map(([head, tail]) => head + tail.map(([s, a]) => s + a).join(""));
    const host = fc.option(
      fc.tuple(fc.array(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,4}[a-z0-9])?$/), { minLength: 2, maxLength: 3 }), fc.option(fc.integer({ min: 1, max: 65535 }))).map(([labels, port]) => labels.join(".") + (port === null ? "" : `:${port}`)),
    );
    const tag = fc.option(fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/));
    const digest = fc.option(fc.stringMatching(/^[a-f0-9]{64}$/).map((hex) => `sha256:${hex}`));
    fc.assert(
      fc.property(host, fc.array(component, { minLength: 1, maxLength: 3 }), tag, digest, (h, path, t, d) => {
        // Without a host, a first component with a dot would be read as one (the Docker rule).
        fc.pre(h !== null || path.length === 1 || !path[0].includes("."));
        const text = `${h === null ? "" : `${h}/`}${path.join("/")}${t === null ? "" : `:${t}`}${d === null ? "" : `@${d}`}`;
        const ref = ImageReference.parse(text);
        assert.equal(ref.tag, t ?? undefined);
        assert.equal(ref.digest?.toString(), d ?? undefined);
        if (h !== null) assert.equal(ref.host, h);
        assert.equal(ImageReference.parse(ref.toString()).toString(), ref.toString());
      }),
    );
  });
});

describe("image references: what is refused, and why", () => {
  const refused: [string, RegExp][] = [
    ["", /it is empty/],
    ["NGINX", /must be lowercase/],
    ["docker.io/Library/nginx", /must be lowercase/],
    ["nginx:", /"" is not a tag/],
    ["nginx:-dev", /"-dev" is not a tag/],
    [`nginx:${"a".repeat(129)}`, /is not a tag/],
    ["nginx@sha256:abc", /not a sha256 digest \(64 lowercase hex characters\)/],
    [`nginx@sha256:${"AB".repeat(32)}`, /not a sha256 digest/],
    [`nginx@md5:${"ab".repeat(16)}`, /sha256 and sha512 digests, not md5/],
    ["nginx@latest", /"latest" is not a digest/],
    ["ab".repeat(32), /image ID, not a repository name/],
    ["registry.example.com/", /names no repository/],
    ["a//b", /"" is not a repository path component/],
    ["app_/x", /"app_" is not a repository path component/],
    ["-bad.example.com/app", /is not a registry host/],
    ["under_score.io/app", /is not a registry host/],
    ["nginx:1:2", /"nginx:1" is not a repository path component/],
    [" nginx", /is not a repository path component/],
    [`${"a".repeat(256)}:v1`, /longer than 255 characters/],
  ];
  for (const [text, why] of refused) {
    it(`refuses ${JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text)} saying ${why.source}`, () => {
      assert.throws(() => ImageReference.parse(text), (err: unknown) => err instanceof ImageReferenceError && why.test(err.message) && err.message.includes(JSON.stringify(text)));
    });
  }
});
