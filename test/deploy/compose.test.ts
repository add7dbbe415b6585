import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { before, describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { parseConfig } from "../../config/load.js";
import { runCommand } from "../support/command.js";

/** The repository root; this module runs from dist/test/deploy/. */
const ROOT = resolve(__dirname, "../../..");

type Doc = Record<string, any>;

describe("docker-compose.yml", () => {
  let compose: Doc;

  before(async () => {
    // Debian's docker-compose validates and resolves the file without a Docker engine.
    const { stdout } = await runCommand("docker-compose", ["--project-directory", ROOT, "-f", join(ROOT, "docker-compose.yml"), "config"]);
    compose = parseYaml(stdout) as Doc;
  });

  it("passes docker-compose config with berth and a Distribution origin", () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ["berth", "origin"]);
    assert.equal(compose.services.origin.image, "registry:2");
    assert.deepEqual(compose.services.berth.depends_on, { origin: { condition: "service_started" } });
  });

  it("builds berth from deploy/Dockerfile, on node:20-slim", async () => {
    const build = compose.services.berth.build;
    assert.equal(build.context, ROOT);
    assert.equal(build.dockerfile, "deploy/Dockerfile");
    const dockerfile = await readFile(join(ROOT, build.dockerfile), "utf8");
    const bases = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.ok(bases.length > 0 && bases.every((base) => base === "node:20-slim"), `FROM ${bases.join(", ")}`);
  });

  it("mounts a berth config that berth's schema accepts, mirroring the origin service", async () => {
    const mount = (compose.services.berth.volumes as string[]).find((v) => v.endsWith(":/etc/berth/berth.yaml:ro"));
    assert.ok(mount, "the config is mounted read-only where the command reads it");
    const command = compose.services.berth.command as string[];
    assert.equal(command[command.indexOf("--config") + 1], "/etc/berth/berth.yaml");
    const hostPath = mount.split(":")[0];
    const config = parseConfig(parseYaml(await readFile(hostPath, "utf8")), hostPath);
    const originPort = (compose.services.origin.ports as string[])[0].split(":").at(-1)!.split("/")[0];
    assert.ok(config.upstreams.some((u) => u.url === `http://origin:${originPort}`), "berth reaches the origin by its service name");
    const published = (compose.services.berth.ports as string[])[0];
    assert.equal(published.split(":").at(-1), `${config.listen.split(":")[1]}/tcp`, "the published port is berth's listen port");
    assert.ok(config.listen.startsWith("0.0.0.0:"), "berth listens beyond the container's loopback");
  });
});
