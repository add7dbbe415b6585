import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { OriginRegistry } from "../support/origin-registry.js";
import { pushImage } from "../support/push-image.js";
import { ask, startNode, startParent, type RunningBerth } from "./tier-fixture.js";

describe("a node addresses its parent by the original registry", () => {
  let origin: OriginRegistry;
  let parent: RunningBerth;

  before(async () => {
    origin = await OriginRegistry.start();
    for (const tag of ["a", "b", "c"]) await pushImage(origin.url, "team/app", tag);
    parent = await startParent(origin);
  });
  after(async () => {
    await parent?.stop();
    await origin?.close();
  });

  it("keeps ?ns= in the parent's next-page links, so every page lists the same upstream repository", async () => {
    const ns = `ns=${encodeURIComponent(origin.host)}`;
    const pages: string[][] = [];
    let next: string | undefined = `/v2/team/app/tags/list?${ns}&n=2`;
    while (next) {
      const response: Response = await fetch(new URL(next, parent.url));
      assert.equal(response.status, 200, next);
      pages.push(((await response.json()) as { tags: string[] }).tags);
      next = /^<([^>]+)>; rel="next"$/.exec(response.headers.get("link") ?? "")?.[1];
      if (next) assert.ok(next.includes(ns), next);
    }
    assert.deepEqual(pages, [["a", "b"], ["c"]]);
  });

  describe("on every request, pages and redirects within the parent included", () => {
    let fakeParent: Server;
    let node: RunningBerth;
    const seen: string[] = [];

    before(async () => {
      // A parent whose links and redirects drop ns, as a berth before this one did.
      fakeParent = createServer((req, res) => {
        seen.push(`${req.method} ${req.url}`);
        const url = new URL(req.url ?? "/", "http://parent");
        if (url.pathname === "/v2/team/app/tags/list") {
          const last = url.searchParams.get("last");
          const headers: Record<string, string> = { "content-type": "application/json" };
          if (last === null) headers.link = '</v2/team/app/tags/list?n=1&last=a>; rel="next"';
          res.writeHead(200, headers).end(JSON.stringify({ name: "team/app", tags: [last === null ? "a" : "b"] }));
        } else if (url.pathname === "/v2/team/app/manifests/moved") {
          res.writeHead(307, { location: "/v2/team/app/manifests/gone" }).end();
        } else {
          res.writeHead(404, { "content-type": "application/json" }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        }
      });
      await new Promise<void>((resolve) => fakeParent.listen(0, "127.0.0.1", resolve));
      node = await startNode({ url: `http://127.0.0.1:${(fakeParent.address() as AddressInfo).port}` }, "registry.example:5000");
    });
    after(async () => {
      await node?.stop();
      fakeParent?.closeAllConnections();
      await new Promise((resolve) => fakeParent?.close(resolve));
    });

    it("sends ns=<registry host> with each of them", async () => {
      const ns = "ns=registry.example%3A5000";
      const tags = await ask(node, "GET", "team/app/tags/list", ns);
      assert.deepEqual(JSON.parse(tags.body.toString()).tags, ["a", "b"]);
      assert.equal((await ask(node, "HEAD", "team/app/manifests/moved", ns)).status, 404);
      assert.deepEqual(seen, [
        `GET /v2/team/app/tags/list?${ns}`,
        `GET /v2/team/app/tags/list?n=1&last=a&${ns}`,
        `HEAD /v2/team/app/manifests/moved?${ns}`,
        `HEAD /v2/team/app/manifests/gone?${ns}`,
      ]);
    });
  });
});
