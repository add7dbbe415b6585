import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { isIP, type AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { Agent, request } from "undici";
import { DestinationPolicy, RefusedDestination, type Resolver } from "../../server/upstream/destination-policy.js";

/** A resolver answering from `table` (a name's answer may change from one lookup to the next), and counting lookups. */
function resolver(table: Record<string, string[] | (() => string[])>): Resolver & { lookups: string[] } {
  const lookups: string[] = [];
  const resolve = async (hostname: string) => {
    lookups.push(hostname);
    const entry = table[hostname];
    const addresses = typeof entry === "function" ? entry() : entry;
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return addresses.map((address) => ({ address, family: isIP(address) }));
  };
  return Object.assign(resolve, { lookups });
}

async function refusalOf(check: Promise<void> | (() => void)): Promise<string | undefined> {
  try {
    if (typeof check === "function") check();
    else await check;
    return undefined;
  } catch (err) {
    assert.ok(err instanceof RefusedDestination, `not a refusal: ${String(err)}`);
    return err.refusal;
  }
}

describe("DestinationPolicy.checkUrl", () => {
  const https = new DestinationPolicy("https://registry.example");
  const http = new DestinationPolicy("http://registry.example:5000");
  const cases: [string, DestinationPolicy, string, string, string | undefined][] = [
    ["another path of the upstream's own origin", https, "https://registry.example/v2/x/blobs/y", "https://registry.example", undefined],
    ["an https CDN", https, "https://production.cloudflare.docker.com/registry-v2/blob?sig=1", "https://registry.example", undefined],
    ["a plain http CDN for a plain http upstream", http, "http://cdn.example/blob", "http://registry.example:5000", undefined],
    ["a file: URL", https, "file:///etc/passwd", "https://registry.example", "a file: URL"],
    ["a gopher: URL", http, "gopher://cdn.example/", "http://registry.example:5000", "a gopher: URL"],
    ["credentials before the host", https, "https://user:pass@cdn.example/", "https://registry.example", "a URL carrying credentials"],
    ["a user name alone before the host", https, "https://registry.example@127.0.0.1/", "https://registry.example", "a URL carrying credentials"],
    ["plain http for an https upstream", https, "http://cdn.example/blob", "https://registry.example", "plain http from https"],
    ["the upstream's own host over plain http when it speaks https", https, "http://registry.example/v2/", "https://registry.example", "plain http from https"],
    ["plain http named by an https hop of a plain http upstream", http, "http://cdn.example/blob", "https://bucket.example/", "plain http from https"],
  ];
  for (const [name, policy, to, from, expected] of cases) {
    it(`${expected ? "refuses" : "admits"} ${name}`, async () => {
      assert.equal(await refusalOf(() => policy.checkUrl(new URL(to), new URL(from))), expected);
    });
  }
});

describe("DestinationPolicy.checkAddresses", () => {
  const names = resolver({ "registry.example": ["93.184.216.34"], "harbor.corp": ["10.0.0.5"], "nowhere.example": ["255.255.255.255"] });
  const publicUpstream = new DestinationPolicy("https://registry.example", names);
  const privateUpstream = new DestinationPolicy("https://harbor.corp", names);
  const loopbackUpstream = new DestinationPolicy("http://127.0.0.1:5000", names);
  const linkLocalUpstream = new DestinationPolicy("http://169.254.10.1:5000", names);
  const unresolvableUpstream = new DestinationPolicy("https://gone.example", names);
  const cases: [string, DestinationPolicy, string[], string | undefined][] = [
    ["public addresses, whoever the upstream", publicUpstream, ["104.16.99.52", "2606:4700::6810:6334"], undefined],
    ["a name with one private address among public ones", publicUpstream, ["104.16.99.52", "10.1.2.3"], "a private address"],
    ["a private address for a public upstream", publicUpstream, ["192.168.1.10"], "a private address"],
    ["loopback for a public upstream", publicUpstream, ["127.0.0.1"], "a loopback address"],
    ["the metadata service for a public upstream", publicUpstream, ["169.254.169.254"], "a link-local address"],
    ["any private address for an upstream in a private range", privateUpstream, ["10.9.9.9", "192.168.1.10", "fd00::5"], undefined],
    ["a shared address for an upstream in a private range", privateUpstream, ["100.64.0.9"], "a shared (carrier-grade NAT) address"],
    ["loopback for an upstream in a private range", privateUpstream, ["127.0.0.1"], "a loopback address"],
    ["the metadata service for an upstream in a private range", privateUpstream, ["169.254.169.254"], "a link-local address"],
    ["the loopback upstream's own address (its token service on another port)", loopbackUpstream, ["127.0.0.1", "::ffff:127.0.0.1"], undefined],
    ["another loopback address for a loopback upstream", loopbackUpstream, ["127.0.0.2"], "a loopback address"],
    ["::1 for an upstream on 127.0.0.1", loopbackUpstream, ["::1"], "a loopback address"],
    ["a private address for a loopback upstream", loopbackUpstream, ["10.0.0.1"], "a private address"],
    ["the metadata service for an upstream elsewhere on the link", linkLocalUpstream, ["169.254.169.254"], "a link-local address"],
    ["the link-local upstream's own address", linkLocalUpstream, ["169.254.10.1"], undefined],
    ["the unspecified address, for anyone", loopbackUpstream, ["0.0.0.0"], "a special-purpose address"],
    ["a private address when the upstream's own name does not resolve", unresolvableUpstream, ["10.0.0.1"], "a private address"],
  ];
  for (const [name, policy, addresses, expected] of cases) {
    it(`${expected ? "refuses" : "admits"} ${name}`, async () => {
      assert.equal(await refusalOf(policy.checkAddresses("cdn.example", addresses)), expected);
    });
  }
});

describe("DestinationPolicy.connector", () => {
  // Both on the same port: one on the upstream's own address, one standing for a node-local service.
  let upstreamSide: Server;
  let nodeLocal: Server;
  let port = 0;
  const hits = { upstreamSide: 0, nodeLocal: 0, nodeLocalConnections: 0 };

  before(async () => {
    for (;;) {
      upstreamSide = createServer((_req, res) => res.end(String(++hits.upstreamSide)));
      await new Promise<void>((resolve) => upstreamSide.listen(0, "127.0.0.2", resolve));
      port = (upstreamSide.address() as AddressInfo).port;
      nodeLocal = createServer((_req, res) => res.end(String(++hits.nodeLocal)));
      nodeLocal.on("connection", () => hits.nodeLocalConnections++);
      const bound = await new Promise<boolean>((resolve) => {
        nodeLocal.once("error", () => resolve(false));
        nodeLocal.listen(port, "127.0.0.1", () => resolve(true));
      });
      if (bound) break;
      await new Promise((resolve) => upstreamSide.close(resolve));
    }
  });
  after(async () => {
    await new Promise((resolve) => upstreamSide.close(resolve));
    await new Promise((resolve) => nodeLocal.close(resolve));
  });

  /** GETs `url` on a fresh connection through `policy`'s connector: the answer's body, or the refusal. */
  async function fetchThrough(policy: DestinationPolicy, url: string): Promise<string> {
    const agent = new Agent({ connect: policy.connector({ timeout: 2000 }) });
    try {
      const response = await request(url, { dispatcher: agent });
      return `answered ${await response.body.text()}`;
    } catch (err) {
      if (err instanceof RefusedDestination) return `refused: ${err.refusal}`;
      throw err;
    } finally {
      await agent.close();
    }
  }

  it("connects a name to the checked address, and refuses it without connecting when its answer changes to a node-local one (DNS rebinding)", async () => {
    let answers = 0;
    const names = resolver({ "rebind.example": () => (answers++ === 0 ? ["127.0.0.2"] : ["127.0.0.1"]) });
    const policy = new DestinationPolicy("http://127.0.0.2:1", names);
    assert.equal(await fetchThrough(policy, `http://rebind.example:${port}/`), "answered 1");
    assert.equal(await fetchThrough(policy, `http://rebind.example:${port}/`), "refused: a loopback address");
    assert.deepEqual(names.lookups, ["rebind.example", "rebind.example"], "one lookup per connection: the one checked is the one used");
    assert.equal(hits.nodeLocalConnections, 0);
  });

  it("checks a literal address as it stands, in whatever spelling the URL gave it", async () => {
    const policy = new DestinationPolicy("http://127.0.0.2:1", resolver({}));
    assert.equal(await fetchThrough(policy, `http://127.0.0.2:${port}/`), "answered 2");
    for (const host of ["127.0.0.1", "2130706433", "0x7f.1", "[::ffff:127.0.0.1]", "0.0.0.0"]) {
      assert.match(await fetchThrough(policy, `http://${host}:${port}/`), /^refused: /, host);
    }
    assert.equal(hits.nodeLocalConnections, 0);
  });
});
