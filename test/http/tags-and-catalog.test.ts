import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startHostedApp, type HostedApp } from "../support/hosted-app.js";
import { errorCode, pushBlob, pushImage, pushManifest, blob } from "./oci-fixtures.js";

const NAME = "list/tags";
/** In byte order, as Go's sort.Strings puts them: digits, uppercase, underscore, lowercase. */
const SORTED_TAGS = ["1.0", "10", "9", "A", "B-1", "Z", "_private", "a", "b", "latest", "v1.10", "v1.9"];

/** Follows `Link: <...>; rel="next"` headers from `start`, collecting every page. */
async function collectPages(app: HostedApp, start: string, key: "tags" | "repositories"): Promise<{ pages: string[][]; links: string[] }> {
  const pages: string[][] = [];
  const links: string[] = [];
  let next: string | undefined = start;
  while (next) {
    const res = await app.request().get(next).expect(200);
    pages.push(res.body[key]);
    const link = res.headers.link as string | undefined;
    if (link) links.push(link);
    next = link ? /^<([^>]+)>; rel="next"$/.exec(link)?.[1] : undefined;
    assert.ok(!link || next, `malformed Link header ${link}`);
  }
  return { pages, links };
}

describe("listing tags", () => {
  let app: HostedApp;
  before(async () => {
    app = await startHostedApp();
    const image = await pushImage(app, NAME, SORTED_TAGS[0]);
    for (const tag of [...SORTED_TAGS].reverse()) await pushManifest(app, NAME, tag, image.manifest);
  });
  after(() => app.close());

  it("lists every tag with the repository name, in lexical (byte) order", async () => {
    const res = await app.request().get(`/v2/${NAME}/tags/list`).expect(200);
    assert.match(res.headers["content-type"], /^application\/json/);
    assert.deepEqual(res.body, { name: NAME, tags: SORTED_TAGS });
    assert.equal(res.headers.link, undefined);
  });

  it("returns the first n tags and a Link to the next page", async () => {
    const res = await app.request().get(`/v2/${NAME}/tags/list?n=5`).expect(200);
    assert.deepEqual(res.body.tags, SORTED_TAGS.slice(0, 5));
    assert.equal(res.headers.link, `</v2/${NAME}/tags/list?n=5&last=B-1>; rel="next"`);
  });

  it("pages through every tag exactly once by following Link headers", async () => {
    const { pages } = await collectPages(app, `/v2/${NAME}/tags/list?n=5`, "tags");
    assert.deepEqual(pages.map((page) => page.length), [5, 5, 2]);
    assert.deepEqual(pages.flat(), SORTED_TAGS);
  });

  it("returns up to n tags after last, excluding last itself", async () => {
    const res = await app.request().get(`/v2/${NAME}/tags/list?n=3&last=A`).expect(200);
    assert.deepEqual(res.body.tags, ["B-1", "Z", "_private"]);
  });

  it("honours last without n, and a last that is not itself a tag", async () => {
    assert.deepEqual((await app.request().get(`/v2/${NAME}/tags/list?last=b`).expect(200)).body.tags, ["latest", "v1.10", "v1.9"]);
    assert.deepEqual((await app.request().get(`/v2/${NAME}/tags/list?last=c`).expect(200)).body.tags, ["latest", "v1.10", "v1.9"]);
    assert.deepEqual((await app.request().get(`/v2/${NAME}/tags/list?last=zzz`).expect(200)).body.tags, []);
  });

  it("sends no Link when the page holds the last tags", async () => {
    for (const query of [`n=${SORTED_TAGS.length}`, `n=${SORTED_TAGS.length + 5}`, "n=2&last=v1.10", "n=1&last=v1.10"]) {
      const res = await app.request().get(`/v2/${NAME}/tags/list?${query}`).expect(200);
      assert.equal(res.headers.link, undefined, query);
    }
  });

  it("answers n=0 with an empty list and no Link", async () => {
    const res = await app.request().get(`/v2/${NAME}/tags/list?n=0`).expect(200);
    assert.deepEqual(res.body, { name: NAME, tags: [] });
    assert.equal(res.headers.link, undefined);
  });

  it("refuses an n that is not a non-negative integer with 400", async () => {
    for (const n of ["-1", "abc", "1.5", ""]) {
      const res = await app.request().get(`/v2/${NAME}/tags/list?n=${n}`);
      assert.equal(res.status, 400, `n=${n}`);
      assert.equal(errorCode(res), "PAGINATION_NUMBER_INVALID");
    }
  });

  it("answers an unknown repository with 404 NAME_UNKNOWN", async () => {
    const res = await app.request().get("/v2/list/unknown/tags/list").expect(404);
    assert.equal(errorCode(res), "NAME_UNKNOWN");
    assert.deepEqual(res.body.errors[0].detail, { name: "list/unknown" });
  });

  it("lists an existing repository without tags as an empty list", async () => {
    await pushBlob(app, "list/untagged", blob("only a blob"));
    const res = await app.request().get("/v2/list/untagged/tags/list").expect(200);
    assert.deepEqual(res.body, { name: "list/untagged", tags: [] });
  });
});

describe("the catalog", () => {
  let app: HostedApp;
  const repositories = ["alpha", "alpha/nested", "beta", "gamma/deep/er", "zeta"];

  before(async () => {
    app = await startHostedApp();
    for (const name of [...repositories].reverse()) await pushImage(app, name, "v1");
    await app.request().post("/v2/only-an-upload/blobs/uploads/").expect(202);
  });
  after(() => app.close());

  it("lists every repository in lexical order, nested ones included", async () => {
    const res = await app.request().get("/v2/_catalog").expect(200);
    assert.deepEqual(res.body, { repositories });
  });

  it("does not list a repository that only has an upload session", async () => {
    const res = await app.request().get("/v2/_catalog").expect(200);
    assert.ok(!res.body.repositories.includes("only-an-upload"));
  });

  it("pages with n and last, linking to the next page with last URL-encoded", async () => {
    const first = await app.request().get("/v2/_catalog?n=2").expect(200);
    assert.deepEqual(first.body.repositories, ["alpha", "alpha/nested"]);
    assert.equal(first.headers.link, `</v2/_catalog?n=2&last=${encodeURIComponent("alpha/nested")}>; rel="next"`);
    const { pages } = await collectPages(app, "/v2/_catalog?n=2", "repositories");
    assert.deepEqual(pages.flat(), repositories);
    assert.deepEqual((await app.request().get("/v2/_catalog?n=0").expect(200)).body.repositories, []);
  });
});
