import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatBearerChallenge } from "../../server/auth/challenge.js";
import { Policy, type PolicyRule } from "../../server/auth/policy.js";
import { covers, formatScope, parseScopes, requiredAccess } from "../../server/auth/scope.js";

const rule = (r: Partial<PolicyRule>): PolicyRule => ({ anonymous: false, repositories: [], actions: [], catalog: false, ...r });

describe("scope parsing (Docker token spec scope grammar)", () => {
  it("reads repeated scope values and several space-separated scopes in one value", () => {
    assert.deepEqual(parseScopes(["repository:team/app:pull", "repository:team/lib:pull,push registry:catalog:*"]), [
      { type: "repository", name: "team/app", actions: ["pull"] },
      { type: "repository", name: "team/lib", actions: ["pull", "push"] },
      { type: "registry", name: "catalog", actions: ["*"] },
    ]);
  });

  it("keeps a host:port inside the resource name", () => {
    assert.deepEqual(parseScopes(["repository:localhost:5000/team/app:pull,push"]), [
      { type: "repository", name: "localhost:5000/team/app", actions: ["pull", "push"] },
    ]);
  });

  it("merges scopes for the same resource and drops duplicate actions", () => {
    assert.deepEqual(parseScopes(["repository:a/b:pull", "repository:a/b:push,pull"]), [{ type: "repository", name: "a/b", actions: ["pull", "push"] }]);
  });

  it("ignores malformed scopes instead of failing the request", () => {
    assert.deepEqual(parseScopes(["", "repository", "repository:a/b", "repository::pull", ":a/b:pull", "Repo!:a/b:pull", "repository:a/b:"]), []);
  });

  it("formats scopes and challenges the way clients parse them", () => {
    assert.equal(formatScope({ type: "repository", name: "team/app", actions: ["pull", "push"] }), "repository:team/app:pull,push");
    assert.equal(
      formatBearerChallenge({ realm: "http://b:5000/token", service: "berth", scope: "repository:team/app:pull", error: "insufficient_scope" }),
      'Bearer realm="http://b:5000/token",service="berth",scope="repository:team/app:pull",error="insufficient_scope"',
    );
    assert.equal(formatBearerChallenge({ realm: "http://b/token", service: 'a"b' }), 'Bearer realm="http://b/token",service="a\\"b"');
  });

  it("derives the scopes a request may be granted by, one per name of its repository, none for /v2/ itself", () => {
    assert.deepEqual(requiredAccess({ repository: "team/app", actions: ["pull", "push"] }), [{ type: "repository", name: "team/app", actions: ["pull", "push"] }]);
    assert.deepEqual(requiredAccess({ repository: "private/library/x", scopeNames: ["private/library/x", "library/x"], actions: ["pull"] }), [
      { type: "repository", name: "private/library/x", actions: ["pull"] },
      { type: "repository", name: "library/x", actions: ["pull"] },
    ]);
    assert.deepEqual(requiredAccess({ actions: [], registryResource: "catalog" }), [{ type: "registry", name: "catalog", actions: ["*"] }]);
    assert.deepEqual(requiredAccess({ actions: [] }), []);
    assert.equal(covers([{ type: "repository", name: "a", actions: ["pull"] }], { type: "repository", name: "a", actions: ["pull", "push"] }), false);
    assert.equal(covers([{ type: "repository", name: "a", actions: ["push", "pull"] }], { type: "repository", name: "a", actions: ["pull", "push"] }), true);
  });
});

describe("policy", () => {
  const alice = { subject: "alice", role: "user" as const, tenant: "team-a" };
  const node = { subject: "node-1", role: "node" as const };
  const anonymous = { subject: "anonymous" };

  it("matches * within one path component, ** across components and ? as one character", () => {
    const policy = new Policy([rule({ subjects: ["alice"], repositories: ["team-a/*", "deep/**", "v?/app"], actions: ["pull"] })]);
    assert.equal(policy.allows(alice, "team-a/app", "pull"), true);
    assert.equal(policy.allows(alice, "team-a/app/sub", "pull"), false);
    assert.equal(policy.allows(alice, "team-a", "pull"), false);
    assert.equal(policy.allows(alice, "deep/a/b/c", "pull"), true);
    assert.equal(policy.allows(alice, "v1/app", "pull"), true);
    assert.equal(policy.allows(alice, "v10/app", "pull"), false);
    assert.equal(policy.allows(alice, "team-a/app", "push"), false);
  });

  it("treats regular-expression characters in globs literally", () => {
    const policy = new Policy([rule({ roles: ["user"], repositories: ["a.b/c"], actions: ["pull"] })]);
    assert.equal(policy.allows(alice, "a.b/c", "pull"), true);
    assert.equal(policy.allows(alice, "aXb/c", "pull"), false);
  });

  it("applies a rule only to principals matching every selector it names", () => {
    const policy = new Policy([rule({ tenants: ["team-a"], roles: ["serviceaccount"], repositories: ["**"], actions: ["pull"] })]);
    assert.equal(policy.allows({ subject: "system:serviceaccount:team-a:default", tenant: "team-a", role: "serviceaccount" }, "x", "pull"), true);
    assert.equal(policy.allows(alice, "x", "pull"), false, "a user of tenant team-a is not a service account");
    assert.equal(policy.allows({ subject: "system:serviceaccount:team-b:default", tenant: "team-b", role: "serviceaccount" }, "x", "pull"), false);
  });

  it("gives anonymous rules to everyone and nothing else to anonymous", () => {
    const policy = new Policy([
      rule({ anonymous: true, repositories: ["public/*"], actions: ["pull"] }),
      rule({ roles: ["node", "user"], repositories: ["**"], actions: ["pull"] }),
    ]);
    assert.equal(policy.allows(anonymous, "public/app", "pull"), true);
    assert.equal(policy.allows(anonymous, "private/app", "pull"), false);
    assert.equal(policy.allows(node, "public/app", "pull"), true);
    assert.equal(policy.allows(node, "private/app", "pull"), true);
  });

  it("substitutes {tenant} with the principal's tenant and never matches a principal without one", () => {
    const policy = new Policy([rule({ roles: ["user", "node"], repositories: ["{tenant}/**"], actions: ["pull", "push"] })]);
    assert.equal(policy.allows(alice, "team-a/app", "push"), true);
    assert.equal(policy.allows(alice, "team-b/app", "pull"), false);
    assert.equal(policy.allows(node, "team-a/app", "pull"), false);
  });

  it("grants the intersection of what is asked and what is allowed", () => {
    const policy = new Policy([
      rule({ subjects: ["alice"], repositories: ["team-a/**"], actions: ["pull", "push"] }),
      rule({ subjects: ["alice"], catalog: true }),
    ]);
    const asked = parseScopes(["repository:team-a/app:pull,push,delete", "repository:team-b/app:pull", "registry:catalog:*", "widget:x:pull"]);
    assert.deepEqual(policy.grant(alice, asked), [
      { type: "repository", name: "team-a/app", actions: ["pull", "push"] },
      { type: "registry", name: "catalog", actions: ["*"] },
    ]);
    assert.deepEqual(policy.grant(node, asked), []);
  });
});
