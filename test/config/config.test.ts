import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDuration } from "../../config/duration.js";
import { ConfigError, defaultConfig, embeddedDefaultDocument, parseConfig, PUBLIC_REGISTRIES } from "../../config/load.js";

describe("configuration", () => {
  it("embeds a default that listens on 127.0.0.1:5000, stores under ./data and mirrors the public registries a node pulls from", () => {
    const config = defaultConfig();
    assert.equal(config.listen, "127.0.0.1:5000");
    assert.equal(config.storage.root, "./data");
    assert.equal(config.auth.mode, "none");
    assert.equal(config.defaultUpstream, undefined, "names that match no ?ns= or prefix stay hosted");
    assert.deepEqual(
      config.upstreams.map(({ host, prefix, url }) => ({ host, prefix, url })),
      [
        { host: "docker.io", prefix: "docker.io", url: "https://registry-1.docker.io" },
        { host: "registry.k8s.io", prefix: "registry.k8s.io", url: "https://registry.k8s.io" },
        { host: "ghcr.io", prefix: "ghcr.io", url: "https://ghcr.io" },
        { host: "quay.io", prefix: "quay.io", url: "https://quay.io" },
        { host: "gcr.io", prefix: "gcr.io", url: "https://gcr.io" },
        { host: "mcr.microsoft.com", prefix: "mcr.microsoft.com", url: "https://mcr.microsoft.com" },
        { host: "public.ecr.aws", prefix: "public.ecr.aws", url: "https://public.ecr.aws" },
      ],
    );
    for (const upstream of config.upstreams) {
      assert.equal(upstream.tagPolicy, "IfNotPresent", upstream.host);
      assert.equal(upstream.connectTimeout, 10_000, `${upstream.host}: an unreachable registry is answered within 10 s`);
      assert.deepEqual(upstream.credentials, [], `${upstream.host}: anonymous`);
    }
    assert.deepEqual(embeddedDefaultDocument().upstreams, PUBLIC_REGISTRIES.map((host) => ({ host })), "only hosts: every other key at its default");
  });

  it("keeps every key's own default empty of upstreams: a config file without upstreams mirrors nothing", () => {
    assert.deepEqual(parseConfig({}, "t").upstreams, []);
  });

  it("defaults an upstream's prefix to its host when the host has no port", () => {
    const config = parseConfig({ upstreams: [{ host: "ghcr.io" }] }, "t");
    assert.equal(config.upstreams[0].prefix, "ghcr.io");
    assert.equal(config.upstreams[0].url, "https://ghcr.io");
    assert.equal(config.upstreams[0].tagPolicy, "IfNotPresent");
    assert.equal(config.upstreams[0].tagTTL, 300_000);
  });

  it("serves docker.io from registry-1.docker.io", () => {
    const config = parseConfig({ upstreams: [{ host: "index.docker.io" }] }, "t");
    assert.equal(config.upstreams[0].host, "docker.io");
    assert.equal(config.upstreams[0].url, "https://registry-1.docker.io");
  });

  it("refuses a host:port upstream without a colon-free prefix, naming the key", () => {
    assert.throws(() => parseConfig({ upstreams: [{ host: "127.0.0.1:5312" }] }, "berth.yaml"), (err: Error) => err instanceof ConfigError && /^berth\.yaml: upstreams\.0\.prefix: .*colon-free/.test(err.message));
    assert.throws(() => parseConfig({ upstreams: [{ host: "127.0.0.1:5312", prefix: "a:b" }] }, "t"), ConfigError);
  });

  it("refuses unknown keys, unknown tag policies and a default upstream that is not configured", () => {
    assert.throws(() => parseConfig({ listn: "x" }, "t"), ConfigError);
    assert.throws(() => parseConfig({ upstreams: [{ host: "ghcr.io", tagPolicy: "Sometimes" }] }, "t"), ConfigError);
    assert.throws(() => parseConfig({ defaultUpstream: "ghcr.io" }, "t"), /defaultUpstream/);
  });

  it("refuses two upstreams with the same prefix", () => {
    assert.throws(() => parseConfig({ upstreams: [{ host: "a.io", prefix: "x" }, { host: "b.io", prefix: "x" }] }, "t"), /configured twice/);
  });

  it("has no parent by default, and takes an http(s) parent with credential files for it", () => {
    assert.deepEqual(parseConfig({}, "t").cluster, { credentials: [] });
    const node = parseConfig({ cluster: { parent: "http://berth-cluster.berth.svc:5000", credentials: ["/etc/berth/parent/.dockerconfigjson"] }, upstreams: [{ host: "docker.io" }] }, "t");
    assert.equal(node.cluster.parent, "http://berth-cluster.berth.svc:5000");
    assert.throws(() => parseConfig({ cluster: { parent: "berth-cluster:5000" } }, "node.yaml"), /node\.yaml: cluster\.parent: must be an http/);
    assert.throws(() => parseConfig({ cluster: { parent: "ftp://berth" } }, "t"), /cluster\.parent/);
  });

  it("refuses registry credentials and tenants beside a parent, naming the key: the node reaches registries only through it, as its one node account", () => {
    const parent = { parent: "http://10.96.0.50:5000" };
    assert.throws(() => parseConfig({ cluster: parent, upstreams: [{ host: "docker.io", credentials: ["/hub.json"] }] }, "t"), /upstreams\.0\.credentials: .*registry credentials belong in the parent's config/);
    assert.throws(() => parseConfig({ cluster: parent, credentials: ["/all.json"] }, "t"), /t: credentials: /);
    assert.throws(() => parseConfig({ cluster: parent, tenants: [{ name: "team-a" }] }, "t"), /tenants: .*single-tenant/);
    assert.doesNotThrow(() => parseConfig({ upstreams: [{ host: "docker.io", credentials: ["/hub.json"] }], tenants: [{ name: "team-a" }] }, "t"), "without a parent, all of it is fine");
  });

  it("parses Go-style durations and plain seconds", () => {
    assert.equal(parseDuration("90s"), 90_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("0"), 0);
    assert.equal(parseDuration(15), 15_000);
    assert.equal(parseDuration("5 minutes"), undefined);
    assert.equal(parseDuration("-1s"), undefined);
  });
});
