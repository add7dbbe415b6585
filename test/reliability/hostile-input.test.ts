import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { parseConfig } from "../../config/load.js";
import { ERROR_STATUS } from "../../server/registry/errors.js";
import { createLogger } from "../../server/log.js";
import { startBerth, type Berth } from "../../server/server.js";
import { FakeUpstream } from "../mirror/fake-upstream.js";
import { configBlob, imageManifest, pushBlob, putManifest } from "./registry-client.js";
import { rawBytes, rawRequest, type RawAnswer, type RawRequest } from "./raw-http.js";
import { auditStore, sha256 } from "./store-audit.js";

/** Marks every name a traversal attempt could create, to look for it outside the storage root afterwards. */
const ESCAPE = "berth-escape-marker";
/** `npm run test:stress` multiplies every property's runs (BERTH_FUZZ_SCALE=20). */
const SCALE = Number(process.env.BERTH_FUZZ_SCALE ?? 1);
const REPOSITORY = "fuzz/app";
const CONFIG = configBlob("hostile");
const LAYER = randomBytes(100_000);

/** Path segments that have broken registries: traversal in every encoding, separators, NUL, bad escapes. */
const hostileSegment = fc.oneof(
  fc.constantFrom("..", ".", "%2e%2e", "%2E%2e", ".%2e", "%252e%252e", "..%2f", "..%2F..%2F", "%2f", "%5c", "\\", "..\\..\\", "%00", "%", "%zz", "%c0%ae%c0%ae", "_catalog", "_uploads", "_manifests", "_layers", "_tags", ESCAPE, `..%2f..%2f${ESCAPE}`),
  fc.stringMatching(/^[a-z0-9._-]{1,24}$/),
  fc.string({ unit: "binary", maxLength: 12 }).map(encodeURIComponent),
);

const anyText = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "binary", maxLength: 40 }), fc.constantFrom("", "0", "-1", "1e9", "999999999999999999999", "NaN", `../../${ESCAPE}`, "sha256:" + "0".repeat(64), "sha256:", "sha512:" + "a".repeat(128)));
/** A query value as a client might send it: encoded, raw, or repeated. */
const queryValue = anyText.map(encodeURIComponent);

interface Fixture {
  berth: Berth;
  port: number;
  parent: string;
  upstream: FakeUpstream;
  layer: Buffer;
  session: string;
}

describe("hostile input (property tests)", () => {
  const fixture = {} as Fixture;

  before(async () => {
    fixture.parent = await mkdtemp(join(tmpdir(), "berth-hostile-"));
    fixture.upstream = await new FakeUpstream().start();
    const config = parseConfig(
      { listen: "127.0.0.1:0", storage: { root: join(fixture.parent, "root") }, upstreams: [{ host: fixture.upstream.host, url: fixture.upstream.url, prefix: "fake" }], cache: { collectInterval: 0 } },
      "test",
    );
    fixture.berth = await startBerth(config, createLogger("silent"));
    fixture.port = (fixture.berth.server.address() as AddressInfo).port;
    fixture.layer = LAYER;
    for (const blob of [CONFIG, LAYER]) assert.equal((await pushBlob(fixture.berth.url, REPOSITORY, blob)).status, 201);
    const manifest = imageManifest({ digest: sha256(CONFIG), size: CONFIG.length }, [{ digest: sha256(LAYER), size: LAYER.length }]);
    assert.equal((await putManifest(fixture.berth.url, REPOSITORY, "v1", manifest)).status, 201);
    const started = await rawRequest(fixture.port, { method: "POST", target: `/v2/${REPOSITORY}/blobs/uploads/` });
    fixture.session = started.headers.get("location")!;
  });
  after(async () => {
    await fixture.berth?.close(1000);
    await fixture.upstream?.stop();
    await rm(fixture.parent, { recursive: true, force: true });
  });

  /** Sends a request and checks the answer is a client error or success, never a 5xx; an error from berth carries an OCI error body. */
  async function send(request: RawRequest): Promise<RawAnswer> {
    const answer = await rawRequest(fixture.port, request);
    const what = `${request.method} ${JSON.stringify(request.target.slice(0, 200))} ${JSON.stringify(request.headers ?? [])}`;
    assert.ok(answer.status < 500, `${what} → ${answer.status} ${answer.body.toString("utf8").slice(0, 300)}`);
    if (answer.status >= 400 && request.method !== "HEAD") {
      const code = ociCode(answer);
      assert.ok(code !== undefined && code in ERROR_STATUS, `${what} → ${answer.status} without an OCI error body: ${answer.body.toString("utf8").slice(0, 200)}`);
      if (fromHttpParser(answer)) assert.ok([400, 413, 431].includes(answer.status), `${what}: a request the HTTP parser refused got ${answer.status}`);
    }
    return answer;
  }

  it("answers any path and method below 500, with an OCI error body for every error berth gives", async () => {
    const suffix = fc.oneof(
      fc.constant(""),
      hostileSegment.map((ref) => `/manifests/${ref}`),
      hostileSegment.map((digest) => `/blobs/${digest}`),
      fc.constant("/blobs/uploads/"),
      hostileSegment.map((id) => `/blobs/uploads/${id}`),
      fc.constant("/tags/list"),
      hostileSegment.map((digest) => `/referrers/${digest}`),
    );
    const target = fc
      .tuple(fc.array(hostileSegment, { minLength: 0, maxLength: 6 }), suffix, fc.option(fc.tuple(fc.constantFrom("n", "last", "digest", "mount", "from", "ns", "tag"), queryValue)))
      .map(([segments, tail, query]) => `/v2/${segments.join("/")}${tail}${query ? `?${query[0]}=${query[1]}` : ""}`);
    const method = fc.constantFrom("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "PROPFIND");
    await fc.assert(
      fc.asyncProperty(method, target, fc.uint8Array({ maxLength: 64 }), async (m, t, body) => {
        await send({ method: m, target: t, body: m === "GET" || m === "HEAD" ? undefined : Buffer.from(body) });
      }),
      { numRuns: 1000 * SCALE },
    );
  });

  it("answers any n, last, digest, mount, from, ns and tag below 500, and pages tags only as asked", async () => {
    const parameter = fc.tuple(fc.constantFrom("n", "last", "digest", "mount", "from", "ns", "tag", "n[]", "digest[0]"), queryValue).map(([name, value]) => `${name}=${value}`);
    const query = fc.array(parameter, { minLength: 1, maxLength: 5 }).map((parameters) => parameters.join("&"));
    const route = fc.constantFrom(
      { method: "GET", path: `/v2/${REPOSITORY}/tags/list` },
      { method: "GET", path: "/v2/_catalog" },
      { method: "POST", path: `/v2/${REPOSITORY}/blobs/uploads/` },
      { method: "PUT", path: "SESSION" },
      { method: "GET", path: `/v2/${REPOSITORY}/manifests/v1` },
      { method: "PUT", path: `/v2/${REPOSITORY}/manifests/sha256:${"2".repeat(64)}` },
      { method: "GET", path: `/v2/team/app/manifests/latest` },
      { method: "GET", path: `/v2/${REPOSITORY}/referrers/sha256:${"1".repeat(64)}` },
    );
    await fc.assert(
      fc.asyncProperty(route, query, fc.uint8Array({ maxLength: 32 }), async ({ method, path }, q, body) => {
        const answer = await send({ method, target: `${path === "SESSION" ? fixture.session : path}?${q}`, body: method === "GET" ? undefined : Buffer.from(body) });
        if (path.endsWith("/tags/list") && answer.status === 200) {
          const tags = (JSON.parse(answer.body.toString("utf8")) as { tags: string[] }).tags;
          assert.ok(tags.length <= 1 && tags.every((tag) => tag === "v1"));
        }
      }),
      { numRuns: 300 * SCALE },
    );
  });

  it("answers any Range on a blob with the exact bytes (206), the whole blob (200) or 416 with the size", async () => {
    const size = fixture.layer.length;
    const range = fc.oneof(
      fc.tuple(fc.option(fc.integer({ min: -10, max: size + 10 })), fc.option(fc.integer({ min: -10, max: size + 10 }))).map(([a, b]) => `bytes=${a ?? ""}-${b ?? ""}`),
      fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `bytes=${a}-${b}, ${b}-${a}`),
      fc.constantFrom("bytes=", "bytes=-", "bytes=0-", "items=0-1", "bytes=99999999999999999999-", "bytes=1-0", "bytes= 5 - 10 ", "bytes=-0"),
      anyText,
    );
    await fc.assert(
      fc.asyncProperty(range, async (header) => {
        const answer = await send({ method: "GET", target: `/v2/${REPOSITORY}/blobs/${sha256(fixture.layer)}`, headers: [["Range", header.replace(/[\r\n\0]/g, "")]] });
        if (answer.status === 206) {
          const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(answer.headers.get("content-range") ?? "");
          assert.ok(match, `206 without a Content-Range for ${header}`);
          assert.ok(answer.body.equals(fixture.layer.subarray(Number(match[1]), Number(match[2]) + 1)), `206 for ${header}: wrong bytes`);
        } else if (answer.status === 200) {
          assert.ok(answer.body.equals(fixture.layer));
        } else if (!fromHttpParser(answer)) {
          assert.equal(answer.status, 416, `Range ${header}`);
          assert.equal(answer.headers.get("content-range"), `bytes */${size}`);
        }
      }),
      { numRuns: 300 * SCALE },
    );
  });

  it("answers any Content-Range on an upload chunk with 202, 400 or 416, and the session stays usable", async () => {
    const started = await send({ method: "POST", target: `/v2/${REPOSITORY}/blobs/uploads/` });
    const session = started.headers.get("location")!;
    const contentRange = fc.oneof(
      fc.tuple(fc.integer({ min: -5, max: 100 }), fc.integer({ min: -5, max: 100 })).map(([a, b]) => `${a}-${b}`),
      fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => `bytes ${a}-${b}/*`),
      anyText,
    );
    await fc.assert(
      fc.asyncProperty(contentRange, fc.uint8Array({ minLength: 1, maxLength: 16 }), async (header, body) => {
        const answer = await send({ method: "PATCH", target: session, headers: [["Content-Range", header.replace(/[\r\n\0]/g, "")]], body: Buffer.from(body) });
        assert.ok([202, 400, 416].includes(answer.status), `Content-Range ${header} → ${answer.status}`);
      }),
      { numRuns: 300 * SCALE },
    );
    const status = await send({ method: "GET", target: session });
    assert.equal(status.status, 204, "the session survived every chunk");
  });

  it("answers any manifest body (random JSON, wrong types, deep nesting, huge arrays) with 201 or a 4xx, never a 5xx", async () => {
    const descriptor = fc.record({ mediaType: fc.oneof(fc.string(), fc.integer(), fc.constant(null)), digest: fc.oneof(anyText, fc.constant(sha256(fixture.layer))), size: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(-1)) }, { requiredKeys: [] });
    const manifestLike = fc.record(
      {
        schemaVersion: fc.oneof(fc.constant(2), fc.integer(), fc.string(), fc.constant(null)),
        mediaType: fc.oneof(fc.constantFrom("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json", ""), fc.string(), fc.integer()),
        config: fc.oneof(descriptor, fc.jsonValue()),
        layers: fc.oneof(fc.array(descriptor, { maxLength: 5 }), fc.jsonValue()),
        manifests: fc.oneof(fc.array(descriptor, { maxLength: 5 }), fc.jsonValue()),
        subject: fc.oneof(descriptor, fc.jsonValue()),
        annotations: fc.oneof(fc.dictionary(fc.string(), fc.string()), fc.jsonValue()),
        artifactType: fc.oneof(fc.string(), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const body = fc.oneof(
      fc.json().map((text) => Buffer.from(text)),
      manifestLike.map((value) => Buffer.from(JSON.stringify(value))),
      fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes)),
      fc.integer({ min: 1, max: 20_000 }).map(deepArray),
      fc.integer({ min: 1, max: 20_000 }).map(deepConfig),
      fc.integer({ min: 1, max: 2_000 }).map(manyLayers),
    );
    const contentType = fc.constantFrom("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.v2+json", "application/json", "text/plain", "");
    await fc.assert(
      fc.asyncProperty(body, contentType, fc.stringMatching(/^[a-z0-9]{1,10}$/), async (bytes, type, tag) => {
        const answer = await send({ method: "PUT", target: `/v2/${REPOSITORY}/manifests/${tag}`, headers: type ? [["Content-Type", type]] : [], body: bytes });
        assert.ok([201, 400, 404, 413].includes(answer.status), `manifest → ${answer.status}`);
      }),
      { numRuns: 200 * SCALE },
    );
  });

  it("answers huge inputs without a 5xx, refusing the invalid ones: 100 KB tags, long names and queries, many headers, 4 MiB manifests", async () => {
    const manifest = (tag: string, body: Buffer, headers: [string, string][] = [["Content-Type", "application/vnd.oci.image.manifest.v1+json"]]): RawRequest => ({ method: "PUT", target: `/v2/${REPOSITORY}/manifests/${tag}`, headers, body });
    const cases: [RawRequest, number][] = [
      [{ method: "GET", target: `/v2/${REPOSITORY}/manifests/${"a".repeat(100 * 1024)}` }, 431],
      [manifest("a".repeat(100 * 1024), Buffer.from("{}")), 431],
      [{ method: "GET", target: `/v2/${REPOSITORY}/manifests/${"a".repeat(10 * 1024)}` }, 404],
      [manifest("a".repeat(10 * 1024), Buffer.from("{}")), 400],
      [{ method: "GET", target: `/v2/${"a/".repeat(200)}a/tags/list` }, 400],
      [{ method: "GET", target: `/v2/${"a".repeat(300)}/tags/list` }, 400],
      [{ method: "GET", target: `/v2/${REPOSITORY}/tags/list?last=${"z".repeat(12 * 1024)}` }, 200],
      [{ method: "GET", target: `/v2/${REPOSITORY}/tags/list?n=${"9".repeat(5000)}` }, 200],
      [{ method: "GET", target: "/v2/", headers: Array.from({ length: 1500 }, (_, i) => [`X${i}`, "v"] as [string, string]) }, 200],
      [{ method: "GET", target: "/v2/", headers: Array.from({ length: 3000 }, (_, i) => [`X-Fuzz-${i}`, "v"] as [string, string]) }, 431],
      [{ method: "GET", target: "/v2/", headers: [["X-Huge", "v".repeat(100 * 1024)]] }, 431],
      [manifest("big", Buffer.alloc(4 * 1024 * 1024 + 1, 0x20)), 413],
      [manifest("big", Buffer.alloc(1024, 0x20), [["Content-Length", String(64 * 1024 * 1024)]]), 413],
      [manifest("deep", deepArray(1_000_000)), 400],
      [manifest("deep", deepConfig(500_000)), 400],
      [manifest("wide", manyLayers(25_000)), 201],
      [{ method: "GET", target: `/v2/${REPOSITORY}/blobs/${sha256(fixture.layer)}`, headers: [["Range", `bytes=${"1".repeat(10_000)}-`]] }, 416],
    ];
    for (const [request, status] of cases) {
      const answer = await send(request);
      assert.equal(answer.status, status, `${request.method} ${request.target.slice(0, 60)}… (${request.headers?.length ?? 0} headers, ${request.body?.length ?? 0} bytes)`);
    }
  });

  it("answers requests Node's HTTP parser refuses with an OCI error document too, and closes the connection", async () => {
    const refused: [what: string, answer: () => Promise<RawAnswer>, status: number][] = [
      ["a header name with a space", () => send({ method: "GET", target: "/v2/", headers: [["Bad Header", "v"]] }), 400],
      ["two Content-Lengths", () => send({ method: "GET", target: "/v2/", headers: [["Content-Length", "1"], ["Content-Length", "2"]] }), 400],
      ["a header over the 16 KiB limit", () => send({ method: "GET", target: "/v2/", headers: [["X-Huge", "v".repeat(100 * 1024)]] }), 431],
      ["3,000 small headers", () => send({ method: "GET", target: "/v2/", headers: Array.from({ length: 3000 }, (_, i) => [`X-Fuzz-${i}`, "v"] as [string, string]) }), 431],
      ["an unknown method", () => send({ method: "FOO", target: "/v2/" }), 400],
      ["a method with a character no token has", () => send({ method: "G@T", target: "/v2/" }), 400],
      ["a control byte in the target", () => send({ method: "GET", target: "/v2/\x01" }), 400],
      ["a request line with a space in the target", () => rawBytes(fixture.port, Buffer.from("GET /v2/ x HTTP/1.1\r\nHost: x\r\n\r\n")), 400],
      ["a request line with no target", () => rawBytes(fixture.port, Buffer.from("GET\r\nHost: x\r\n\r\n")), 400],
      ["an unknown HTTP version", () => rawBytes(fixture.port, Buffer.from("GET /v2/ HTTP/9.9\r\nHost: x\r\n\r\n")), 400],
      ["a TLS ClientHello on the plain HTTP port", () => rawBytes(fixture.port, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])), 400],
      ["a chunked body with a chunk size that is no number", () => rawBytes(fixture.port, Buffer.from(`PUT /v2/${REPOSITORY}/manifests/v2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`)), 400],
    ];
    for (const [what, answerOf, status] of refused) {
      const answer = await answerOf();
      assert.equal(answer.status, status, what);
      assert.equal(ociCode(answer), "UNSUPPORTED", what);
      assert.ok(fromHttpParser(answer), `${what}: ${answer.body.toString("utf8")}`);
      assert.equal(answer.headers.get("docker-distribution-api-version"), "registry/2.0", what);
      assert.equal(answer.headers.get("content-type"), "application/json", what);
    }
  });

  it("has written nothing outside its storage root, and the store is consistent", async () => {
    assert.deepEqual(await readdir(fixture.parent), ["root"], "the storage root's parent holds only the root");
    const audit = await auditStore(join(fixture.parent, "root"));
    assert.deepEqual(audit.problems, []);
    const escaped = (await readdir(tmpdir(), { recursive: true }).catch(() => [] as string[])).filter((name) => name.includes(ESCAPE));
    assert.deepEqual(escaped, [], "no traversal reached the temp dir");
    const manifest = await rawRequest(fixture.port, { method: "GET", target: `/v2/${REPOSITORY}/manifests/v1`, headers: [["Accept", "application/vnd.oci.image.manifest.v1+json"]] });
    assert.equal(manifest.status, 200, "berth still serves what it held before the fuzzing");
  });
});

/** `[[[…]]]`, `depth` deep. */
function deepArray(depth: number): Buffer {
  return Buffer.from(`${"[".repeat(depth)}${"]".repeat(depth)}`);
}

/** A manifest whose config is an object nested `depth` deep. */
function deepConfig(depth: number): Buffer {
  return Buffer.from(`{"schemaVersion":2,"layers":[],"config":${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}`);
}

/** A manifest listing `count` layers (all the one pushed layer). */
function manyLayers(count: number): Buffer {
  const layer = { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(LAYER), size: LAYER.length };
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(CONFIG), size: CONFIG.length }, layers: Array.from({ length: count }, () => layer) }));
}

function ociCode(answer: RawAnswer): string | undefined {
  return ociField(answer, "code");
}

function ociMessage(answer: RawAnswer): string | undefined {
  return ociField(answer, "message");
}

function ociField(answer: RawAnswer, field: "code" | "message"): string | undefined {
  try {
    const errors = (JSON.parse(answer.body.toString("utf8")) as { errors?: Record<string, unknown>[] }).errors;
    const value = errors?.[0]?.[field];
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

/** berth's answer to a request Node's HTTP parser refused before any route saw it. */
function fromHttpParser(answer: RawAnswer): boolean {
  return answer.headers.get("connection") === "close" && /^(malformed HTTP request|request header fields too large)/.test(ociMessage(answer) ?? "");
}
