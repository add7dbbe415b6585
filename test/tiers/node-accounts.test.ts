import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { bcryptHash } from "../auth/token-fixture.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { pushImage } from "../support/push-image.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { ask, originRequests, pullThrough, startNode, startParent, writeDockerConfig, type RunningBerth } from "./tier-fixture.js";

const NODES = 5;
/** Long enough for five sequential pulls of a small image; the second round waits it out. */
const CONFIRMATION_TTL_MS = 4_000;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("node accounts at a parent in token mode", () => {
  let work: TempDir;
  let origin: OriginRegistry;
  let parent: RunningBerth;
  let image: Awaited<ReturnType<typeof pushImage>>;
  const nodes: RunningBerth[] = [];
  const accounts = Array.from({ length: NODES }, (_, i) => ({ username: `node-${i + 1}`, password: `secret-${i + 1}` }));

  /** A fresh node berth (empty cache) acting as `account` at the parent. */
  const startNodeAs = async (account: { username: string; password: string }, file: string) => {
    const credentials = await writeDockerConfig(join(work.path, file), new URL(parent.url).host, account.username, account.password);
    const node = await startNode(parent, origin.host, {}, { cluster: { credentials: [credentials] } });
    nodes.push(node);
    return node;
  };

  before(async () => {
    work = await makeTempDir("tiers-accounts");
    origin = await OriginRegistry.start({ auth: { kind: "htpasswd", users: { puller: "pull-secret" } } });
    image = await pushImage(origin.url, "private/app", "v1", basic("puller", "pull-secret"));
    const originCredentials = await writeDockerConfig(join(work.path, "origin.json"), origin.host, "puller", "pull-secret");
    parent = await startParent(
      origin,
      { credentials: [originCredentials], accessConfirmationTTL: `${CONFIRMATION_TTL_MS / 1000}s` },
      {
        auth: {
          mode: "token",
          token: { lifetime: "5m" },
          nodes: accounts.map((a) => ({ username: a.username, passwordHash: bcryptHash(a.password) })),
          users: [{ username: "limited", passwordHash: bcryptHash("limited-secret") }],
          policy: [
            { roles: ["node"], repositories: ["**"], actions: ["pull"] },
            { subjects: ["limited"], repositories: ["origin/public/**"], actions: ["pull"] },
          ],
        },
      },
    );
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
    await parent?.stop();
    await origin?.close();
    await work?.remove();
  });

  it("costs the origin one fetch per object, and one access check per repository per accessConfirmationTTL, for any number of node accounts", async () => {
    const rounds = [];
    for (const round of [1, 2]) rounds.push(await Promise.all(accounts.map((account, i) => startNodeAs(account, `round-${round}-${i}.json`))));
    const first = (await origin.accessLog()).length;
    for (const node of rounds[0]) assert.equal((await pullThrough(node, origin.host, "private/app", "v1")).tag.digest, image.manifest);
    assert.deepEqual(
      (await originRequests(origin, "private/app", first)).sort(),
      [`GET /v2/private/app/blobs/${image.config} 200`, `GET /v2/private/app/blobs/${image.layer} 200`, `GET /v2/private/app/manifests/${image.manifest} 200`, "HEAD /v2/private/app/manifests/v1 200"].sort(),
      "the node accounts share the parent's one access record: no check beyond the first fetch",
    );

    await sleep(CONFIRMATION_TTL_MS + 200);
    const second = (await origin.accessLog()).length;
    for (const node of rounds[1]) assert.equal((await pullThrough(node, origin.host, "private/app", "v1")).tag.digest, image.manifest);
    assert.deepEqual(await originRequests(origin, "private/app", second), [`HEAD /v2/private/app/manifests/${image.manifest} 200`], "one access check for five node accounts");
  });

  it("reads through the parent nothing its account may not, though the parent has it cached", async () => {
    const node = await startNodeAs({ username: "limited", password: "limited-secret" }, "limited.json");
    const ns = `ns=${encodeURIComponent(origin.host)}`;
    for (const path of ["private/app/manifests/v1", `private/app/manifests/${image.manifest}`, `private/app/blobs/${image.layer}`]) {
      const answer = await ask(node, "GET", path, ns);
      assert.ok(answer.status === 401 || answer.status === 403, `${path}: answered ${answer.status}`);
      assert.ok(!answer.body.includes(image.layerBytes.subarray(0, 64)), path);
    }
  });

  it("serves nothing to a node whose account the parent refuses", async () => {
    const node = await startNodeAs({ username: "node-1", password: "wrong" }, "wrong.json");
    const answer = await ask(node, "HEAD", "private/app/manifests/v1", `ns=${encodeURIComponent(origin.host)}`);
    assert.ok(answer.status === 401 || answer.status === 403, `answered ${answer.status}`);
  });
});
