import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { hostLabelMatches } from "../../../server/upstream/credentials/host-glob.js";

// Go's path/filepath match_test.go table, without the rows about '/', which never occurs in a host label.
const GO_MATCH_TESTS: [pattern: string, name: string, matches: boolean][] = [
  ["abc", "abc", true],
  ["*", "abc", true],
  ["*c", "abc", true],
  ["a*", "a", true],
  ["a*", "abc", true],
  ["a*b?c*x", "abxbbxdbxebxczzx", true],
  ["a*b?c*x", "abxbbxdbxebxczzy", false],
  ["ab[c]", "abc", true],
  ["ab[b-d]", "abc", true],
  ["ab[e-g]", "abc", false],
  ["ab[^c]", "abc", false],
  ["ab[^b-d]", "abc", false],
  ["ab[^e-g]", "abc", true],
  ["a\\*b", "a*b", true],
  ["a\\*b", "ab", false],
  ["a?b", "a☺b", true],
  ["a[^a]b", "a☺b", true],
  ["a???b", "a☺b", false],
  ["a[^a][^a][^a]b", "a☺b", false],
  ["[a-ζ]*", "α", true],
  ["*[a-ζ]", "A", false],
  ["[\\]a]", "]", true],
  ["[\\-]", "-", true],
  ["[x\\-]", "x", true],
  ["[x\\-]", "-", true],
  ["[x\\-]", "z", false],
  ["[\\-x]", "x", true],
  ["[\\-x]", "-", true],
  ["[\\-x]", "a", false],
  ["*x", "xxx", true],
];

// Patterns Go's Match answers with ErrBadPattern; kubelet treats that as no match.
const MALFORMED: [pattern: string, name: string][] = [
  ["[]a]", "]"],
  ["[-]", "-"],
  ["[x-]", "x"],
  ["[x-]", "-"],
  ["[-x]", "x"],
  ["\\", "a"],
  ["[a-b-c]", "a"],
  ["[", "a"],
  ["[^", "a"],
  ["[^bc", "a"],
  ["a[", "a"],
  ["a[", "ab"],
  ["*[", "x"],
  ["a\\", "a"],
  ["[^]", "a"],
];

describe("host label glob (Go filepath.Match)", () => {
  for (const [pattern, name, matches] of GO_MATCH_TESTS) {
    test(`${JSON.stringify(pattern)} ${matches ? "matches" : "does not match"} ${JSON.stringify(name)}`, () => {
      assert.equal(hostLabelMatches(pattern, name), matches);
    });
  }

  for (const [pattern, name] of MALFORMED) {
    test(`malformed ${JSON.stringify(pattern)} matches nothing, not even ${JSON.stringify(name)}`, () => {
      assert.equal(hostLabelMatches(pattern, name), false);
    });
  }

  test("a star matches the empty label and any run of characters", () => {
    assert.equal(hostLabelMatches("*", ""), true);
    assert.equal(hostLabelMatches("reg*", "reg"), true);
    assert.equal(hostLabelMatches("*-good", "prefix-good"), true);
    assert.equal(hostLabelMatches("*-good", "prefix-bad"), false);
  });

  test("a question mark matches exactly one character", () => {
    assert.equal(hostLabelMatches("reg?", "reg1"), true);
    assert.equal(hostLabelMatches("reg?", "reg"), false);
    assert.equal(hostLabelMatches("reg?", "reg12"), false);
  });

  test("a class matches ranges, listed characters and, negated, everything else", () => {
    assert.equal(hostLabelMatches("node[0-9]", "node7"), true);
    assert.equal(hostLabelMatches("node[0-9]", "nodea"), false);
    assert.equal(hostLabelMatches("node[a-cx]", "nodex"), true);
    assert.equal(hostLabelMatches("node[^0-9]", "nodea"), true);
    assert.equal(hostLabelMatches("node[^0-9]", "node7"), false);
    assert.equal(hostLabelMatches("[*]", "*"), true);
    assert.equal(hostLabelMatches("[*]", "a"), false);
  });

  test("matching is case-sensitive, as Go's is", () => {
    assert.equal(hostLabelMatches("Registry", "registry"), false);
  });
});
