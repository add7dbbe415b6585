import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDuration } from "../../config/duration.js";
import { ConfigError, defaultConfig, parseConfig } from "../../config/load.js";

describe("configuration", () => {
  it("embeds a default that listens on 127.0.0.1:5000 and stores under ./data", () => {
    const config = defaultConfig();
    assert.equal(config.listen, "127.0.0.1:5000");
    assert.equal(config.storage.root, "./data");
    assert.deepEqual(config.upstreams, []);
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

  it("parses Go-style durations and plain seconds", () => {
    assert.equal(parseDuration("90s"), 90_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("0"), 0);
    assert.equal(parseDuration(15), 15_000);
    assert.equal(parseDuration("5 minutes"), undefined);
    assert.equal(parseDuration("-1s"), undefined);
  });
});
