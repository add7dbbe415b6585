import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { lines, runBerth } from "./cli-fixture.js";

const VERBS = ["resolve", "warm", "policy", "gc", "keys"];

describe("berth verbs: help, usage errors and berth policy", () => {
  it("lists every verb in berth --help", async () => {
    const result = await runBerth(["--help"]);
    assert.equal(result.code, 0);
    for (const verb of ["serve", ...VERBS]) assert.match(result.stdout, new RegExp(`^  ${verb} `, "m"));
  });

  for (const verb of VERBS) {
    it(`prints berth ${verb} --help on stdout and exits 0`, async () => {
      const result = await runBerth([verb, "--help"]);
      assert.equal(result.code, 0);
      assert.equal(result.stderr, "");
      assert.match(result.stdout, new RegExp(`^usage: berth ${verb} `));
    });
  }

  it("answers an unknown option with one line on stderr and exit 2", async () => {
    const result = await runBerth(["resolve", "--bert", "http://x", "nginx"]);
    assert.equal(result.code, 2);
    assert.deepEqual(lines(result.stderr), ["berth resolve: Unknown option '--bert' (berth resolve --help)"]);
  });

  it("prints the pull policy Kubernetes defaults, the normalised image and why", async () => {
    const result = await runBerth(["policy", "nginx:1.25"]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(lines(result.stdout), [
      "IfNotPresent",
      "  image: docker.io/library/nginx:1.25",
      "  why:   omitted, and the tag is :1.25, not :latest: Kubernetes defaults it to IfNotPresent; it is set once, when the pod is created, and not recomputed when the tag moves",
    ]);
    assert.equal(lines((await runBerth(["policy", "busybox"])).stdout)[0], "Always");
    assert.equal(lines((await runBerth(["policy", `busybox@sha256:${"a".repeat(64)}`])).stdout)[0], "IfNotPresent");
  });

  it("keeps an explicit --pull-policy, and says so", async () => {
    const result = await runBerth(["policy", "nginx", "--pull-policy", "Never"]);
    assert.equal(result.code, 0);
    assert.equal(lines(result.stdout)[0], "Never");
    assert.match(result.stdout, /why: {3}set explicitly: the kubelet never pulls/);
  });

  it("refuses a pull policy Kubernetes does not know, or other than one image, with exit 2", async () => {
    const policy = await runBerth(["policy", "nginx", "--pull-policy", "always"]);
    assert.equal(policy.code, 2);
    assert.deepEqual(lines(policy.stderr), ['berth policy: --pull-policy must be Always, IfNotPresent or Never, not "always" (berth policy --help)']);
    const two = await runBerth(["policy", "nginx", "busybox"]);
    assert.equal(two.code, 2);
    assert.match(two.stderr, /policy takes one IMAGE, not 2/);
  });
});
