import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { classifyAddress, sameAddress } from "../../server/upstream/address-class.js";

describe("classifyAddress", () => {
  const table: [string, ReturnType<typeof classifyAddress>][] = [
    ["8.8.8.8", "public"],
    ["104.16.99.52", "public"],
    ["2606:4700::6810:6334", "public"],
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["::1", "loopback"],
    ["169.254.169.254", "link-local"],
    ["fe80::1", "link-local"],
    ["10.0.0.1", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.254", "private"],
    ["192.168.1.1", "private"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["100.64.0.1", "shared"],
    ["100.127.255.254", "shared"],
    ["0.0.0.0", "special"],
    ["0.1.2.3", "special"],
    ["::", "special"],
    ["224.0.0.1", "special"],
    ["ff02::1", "special"],
    ["255.255.255.255", "special"],
    ["192.0.2.1", "special"],
    ["240.0.0.1", "special"],
    // IPv6 spellings of IPv4 addresses are classified as the IPv4 address they stand for.
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:169.254.169.254", "link-local"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:8.8.8.8", "public"],
    ["64:ff9b::a9fe:a9fe", "link-local"],
    ["64:ff9b::808:808", "public"],
    // Forms that carry another address berth cannot vouch for.
    ["::7f00:1", "special"],
    ["2002:7f00:1::", "special"],
    ["2001::1", "special"],
    // Not a literal address: never public.
    ["2130706433", "special"],
    ["localhost", "special"],
  ];
  for (const [address, expected] of table) {
    it(`classifies ${address} as ${expected}`, () => assert.equal(classifyAddress(address), expected));
  }
});

describe("sameAddress", () => {
  it("compares addresses whatever their spelling", () => {
    assert.equal(sameAddress("127.0.0.1", "::ffff:127.0.0.1"), true);
    assert.equal(sameAddress("::1", "0:0:0:0:0:0:0:1"), true);
    assert.equal(sameAddress("127.0.0.1", "127.0.0.2"), false);
    assert.equal(sameAddress("127.0.0.1", "localhost"), false);
  });
});
