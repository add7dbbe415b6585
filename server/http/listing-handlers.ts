import type { Request, Response } from "express";
import type { Digest } from "../reference/digest.js";
import { RegistryError } from "../registry/errors.js";
import { OCI_INDEX } from "../registry/media-types.js";
import type { Registry, Repository } from "../registry/registry.js";
import { sendJson } from "./responses.js";
import { queryString } from "./upload-handlers.js";

export async function listTags(req: Request, res: Response, repository: Repository): Promise<void> {
  const ns = queryString(req, "ns");
  // The next page must reach the same upstream: containerd's ?ns= (and a node tier's) stays on it.
  const page = paginate(req, await repository.tags(), `/v2/${repository.name}/tags/list`, ns === undefined ? "" : `ns=${encodeURIComponent(ns)}&`);
  if (page.link) res.setHeader("Link", page.link);
  sendJson(res, 200, { name: repository.name, tags: page.items });
}

/** The hosted repositories the client may pull: the catalog is per viewer. */
export async function listCatalog(req: Request, res: Response, registry: Registry, mayPull: (name: string) => boolean): Promise<void> {
  const page = paginate(req, (await registry.catalog()).filter(mayPull), "/v2/_catalog");
  if (page.link) res.setHeader("Link", page.link);
  sendJson(res, 200, { repositories: page.items });
}

export async function listReferrers(req: Request, res: Response, repository: Repository, subject: Digest): Promise<void> {
  const artifactType = queryString(req, "artifactType");
  let manifests = await repository.referrers(subject);
  if (artifactType) {
    manifests = manifests.filter((d) => d.artifactType === artifactType);
    res.setHeader("OCI-Filters-Applied", "artifactType");
  }
  sendJson(res, 200, { schemaVersion: 2, mediaType: OCI_INDEX, manifests }, OCI_INDEX);
}

/** `n`/`last` pagination over a sorted list, with the `Link` header for the next page. */
function paginate(req: Request, all: string[], path: string, query = ""): { items: string[]; link?: string } {
  const last = queryString(req, "last");
  const nText = queryString(req, "n");
  let items = last === undefined ? all : all.filter((item) => item > last);
  if (nText === undefined) return { items };
  if (!/^\d+$/.test(nText)) throw new RegistryError("PAGINATION_NUMBER_INVALID", undefined, { n: nText.slice(0, 32) });
  const n = Number(nText);
  const more = items.length > n;
  items = items.slice(0, n);
  if (!more || n === 0) return { items };
  const next = `${path}?${query}n=${n}&last=${encodeURIComponent(items[items.length - 1])}`;
  return { items, link: `<${next}>; rel="next"` };
}
