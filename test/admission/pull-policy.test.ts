import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pullPolicyFor } from "../../server/admission/pull-policy.js";

const SHA = `sha256:${"c".repeat(64)}`;

describe("Kubernetes' default imagePullPolicy (docs/design.md §3)", () => {
  const defaults: [string, "Always" | "IfNotPresent", RegExp][] = [
    ["nginx", "Always", /names no tag, which means :latest/],
    ["docker.io/library/nginx", "Always", /names no tag/],
    ["nginx:latest", "Always", /the tag is :latest/],
    [`nginx:latest@${SHA}`, "Always", /the tag is :latest/],
    ["nginx:1.25", "IfNotPresent", /the tag is :1\.25, not :latest/],
    ["localhost:5000/app:Latest", "IfNotPresent", /the tag is :Latest, not :latest/],
    [`nginx:1.25@${SHA}`, "IfNotPresent", /the tag is :1\.25/],
    [`nginx@${SHA}`, "IfNotPresent", /pinned by digest, with no tag/],
    ["NGINX", "IfNotPresent", /unparseable image .*must be lowercase/],
  ];
  for (const [image, policy, why] of defaults) {
    it(`defaults an omitted policy for ${image} to ${policy}`, () => {
      const decision = pullPolicyFor(image);
      assert.equal(decision.policy, policy);
      assert.equal(decision.explicit, false);
      assert.match(decision.reason, why);
    });
  }

  it("says the default is set at creation and not recomputed when the tag moves", () => {
    assert.match(pullPolicyFor("nginx:1.25").reason, /set once, when the pod is created, and not recomputed when the tag moves/);
  });

  it("keeps an explicit policy, whatever the tag", () => {
    for (const policy of ["Always", "IfNotPresent", "Never"] as const) {
      const decision = pullPolicyFor("nginx", policy);
      assert.equal(decision.policy, policy);
      assert.equal(decision.explicit, true);
      assert.match(decision.reason, /^set explicitly: /);
    }
  });
});
