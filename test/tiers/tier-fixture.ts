import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { CONTAINERD_ACCEPT } from "../support/containerd.js";
import type { OriginRegistry } from "../support/origin-registry.js";
import { startMirror } from "../mirror/mirror-fixture.js";

export type RunningBerth = Awaited<ReturnType<typeof startMirror>>;

/** The path prefix both tiers serve the origin under. */
export const PREFIX = "origin";

/** The cluster tier: a berth mirroring `origin` under `registry` (default the origin's own host), plus `upstream` and top-level `config` keys. */
export function startParent(origin: OriginRegistry, upstream: Record<string, unknown> = {}, config: Record<string, unknown> = {}, registry = origin.host): Promise<RunningBerth> {
  return startMirror([{ host: registry, url: origin.url, prefix: PREFIX, ...upstream }], config);
}

/** A node tier: a berth that mirrors `registry` (host only) through `parent`, plus `upstream` and top-level `config` keys. */
export function startNode(parent: { url: string }, registry: string, upstream: Record<string, unknown> = {}, config: Record<string, unknown> = {}): Promise<RunningBerth> {
  const cluster = { parent: parent.url, ...(config.cluster as object | undefined) };
  return startMirror([{ host: registry, prefix: PREFIX, ...upstream }], { ...config, cluster });
}

/** A docker config.json giving `username` at the registry (or berth) `host`. */
export async function writeDockerConfig(path: string, host: string, username: string, password: string): Promise<string> {
  await writeFile(path, JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${username}:${password}`).toString("base64") } } }));
  return path;
}

/** A manifest answer: status, digest, Warning headers, error code. */
export interface Answer {
  status: number;
  digest: string | null;
  warnings: string[];
  code?: string;
  headers: Headers;
  body: Buffer;
}

/** `METHOD <berth>/v2/<path>?<query>` with containerd's Accept. */
export async function ask(berth: { url: string }, method: "GET" | "HEAD", path: string, query = ""): Promise<Answer> {
  const response = await fetch(`${berth.url}/v2/${path}${query ? `?${query}` : ""}`, { method, headers: { Accept: CONTAINERD_ACCEPT.join(", ") }, signal: AbortSignal.timeout(60_000) });
  const body = Buffer.from(await response.arrayBuffer());
  const answer: Answer = { status: response.status, digest: response.headers.get("docker-content-digest"), warnings: response.headers.get("warning")?.split(/,\s*(?=\d{3} )/) ?? [], headers: response.headers, body };
  if (response.status >= 400 && body.length > 0) answer.code = (JSON.parse(body.toString("utf8")) as { errors?: { code?: string }[] }).errors?.[0]?.code;
  return answer;
}

/**
 * Pulls `repository:tag` as containerd does from a mirror (`?ns=REGISTRY` on every request): the
 * tag by HEAD, then every manifest of the image (an index's entries too) and every blob by digest.
 * Returns the tag's answer and every digest fetched.
 */
export async function pullThrough(berth: { url: string }, registry: string, repository: string, tag: string): Promise<{ tag: Answer; digests: string[] }> {
  const ns = `ns=${encodeURIComponent(registry)}`;
  const head = await ask(berth, "HEAD", `${repository}/manifests/${tag}`, ns);
  assert.equal(head.status, 200, `HEAD ${repository}:${tag}: ${head.status} ${head.code ?? ""}`);
  const digests: string[] = [];
  const manifests = [head.digest!];
  while (manifests.length > 0) {
    const digest = manifests.shift()!;
    const manifest = await ask(berth, "GET", `${repository}/manifests/${digest}`, ns);
    assert.equal(manifest.status, 200, `GET ${repository}@${digest}: ${manifest.status}`);
    digests.push(digest);
    const document = JSON.parse(manifest.body.toString("utf8")) as { manifests?: { digest: string }[]; config?: { digest: string }; layers?: { digest: string }[] };
    manifests.push(...(document.manifests ?? []).map((m) => m.digest));
    for (const blob of [document.config, ...(document.layers ?? [])].filter((b) => b !== undefined)) {
      const answer = await ask(berth, "GET", `${repository}/blobs/${blob.digest}`, ns);
      assert.equal(answer.status, 200, `GET ${repository}@${blob.digest}: ${answer.status}`);
      digests.push(blob.digest);
    }
  }
  return { tag: head, digests };
}

/** Requests berth (User-Agent `berth`) sent the origin under `/v2/<repository>/` after `since`, as `METHOD PATH STATUS`, 401 challenges left out. */
export async function originRequests(origin: OriginRegistry, repository: string, since = 0): Promise<string[]> {
  const log = (await origin.accessLog()).slice(since);
  return log.filter((e) => e.path.startsWith(`/v2/${repository}/`) && e.userAgent === "berth" && e.status !== 401).map((e) => `${e.method} ${e.path} ${e.status}`);
}
