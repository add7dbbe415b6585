import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";

/** What a storage root holds at its top level; anything else is a stray write. */
const TOP_LEVEL = new Set(["blobs", "repositories", "mirrors", "uploads", "cache", "auth", "_tmp", "_probe", "_lease"]);
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };
const PART_NAME = /^\d{16}$/;
const UPLOAD_ID = /^[a-f0-9-]{36}$/;
/** Read whole rather than streamed: most blobs are configs and manifests. */
const SMALL_FILE = 256 * 1024;

/** What an audit of a berth storage root found. */
export interface StoreAudit {
  /** Digests of the blobs in the store, each verified to hash to its name. */
  blobs: Set<string>;
  /** Broken invariants: a blob that does not hash to its name, a link to a missing blob, a torn record. Empty when the store is consistent. */
  problems: string[];
  /** Names in `_tmp/` with their modification times. */
  tempFiles: { name: string; modified: Date }[];
  /** Upload sessions (with `info`) and their sizes. */
  uploads: Map<string, number>;
  /** Upload directories without `info`: what a crash while deleting a session leaves; unreachable, harmless. */
  orphanUploadDirs: number;
  /** Mirror tags whose manifest was evicted: a hint to revalidate, not a link (the mirror refetches). */
  staleMirrorTags: number;
  /** Bytes of blob content. */
  blobBytes: number;
}

/**
 * Audits a storage root on disk, as crash and full-disk tests need it: every blob under
 * `blobs/ALG/XX/HEX` hashes to HEX; every manifest, layer, tag and referrer link of a hosted
 * repository, and every manifest and layer link of a mirror, points to a blob that is there;
 * hosted manifests' config, layers and children are there; records parse; upload sessions'
 * parts are contiguous. Best run while berth is stopped (or idle): a collection running
 * meanwhile can delete what the audit is reading, which the audit then reports.
 */
export async function auditStore(root: string): Promise<StoreAudit> {
  const audit: StoreAudit = { blobs: new Set(), problems: [], tempFiles: [], uploads: new Map(), orphanUploadDirs: 0, staleMirrorTags: 0, blobBytes: 0 };
  for (const name of await list(root)) {
    if (!TOP_LEVEL.has(name)) audit.problems.push(`unexpected entry ${name} at the storage root`);
  }
  for (const name of await list(join(root, "_tmp"))) {
    const info = await stat(join(root, "_tmp", name)).catch(() => undefined);
    if (info) audit.tempFiles.push({ name, modified: info.mtime });
  }
  await auditBlobs(root, audit);
  await auditRepositories(root, join(root, "repositories"), "hosted", audit);
  for (const prefix of await list(join(root, "mirrors"))) await auditRepositories(root, join(root, "mirrors", prefix), "mirror", audit);
  await auditUploads(join(root, "uploads"), audit);
  const access = await readFile(join(root, "cache", "last-access.json"), "utf8").catch(() => undefined);
  if (access !== undefined && !parses(access)) audit.problems.push("cache/last-access.json is torn");
  return audit;
}

/** The sha256 digest of a byte string, as `sha256:HEX`. */
export function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

async function auditBlobs(root: string, audit: StoreAudit): Promise<void> {
  for (const algorithm of await list(join(root, "blobs"))) {
    if (!(algorithm in HEX_LENGTH)) {
      audit.problems.push(`blobs/${algorithm}: unknown algorithm`);
      continue;
    }
    for (const prefix of await list(join(root, "blobs", algorithm))) {
      for (const hex of await list(join(root, "blobs", algorithm, prefix))) {
        const where = `blobs/${algorithm}/${prefix}/${hex}`;
        if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex) || !hex.startsWith(prefix)) {
          audit.problems.push(`${where}: not a blob name`);
          continue;
        }
        const hashed = await hashFile(join(root, where), algorithm);
        if (hashed === undefined) continue; // deleted while we looked
        if (hashed.hex !== hex) audit.problems.push(`${where}: content hashes to ${hashed.hex}`);
        audit.blobs.add(`${algorithm}:${hex}`);
        audit.blobBytes += hashed.size;
      }
    }
  }
}

async function auditRepositories(root: string, base: string, kind: "hosted" | "mirror", audit: StoreAudit): Promise<void> {
  const has = (digest: string) => audit.blobs.has(digest);
  const walk = async (dir: string, name: string): Promise<void> => {
    const children = await list(dir);
    const where = (path: string) => `${kind} ${name}: ${path}`;
    const manifests = new Set<string>();
    for (const digest of await linkedDigests(join(dir, "_manifests"))) {
      manifests.add(digest);
      const record = await readFile(join(dir, "_manifests", ...digest.split(":")), "utf8").catch(() => undefined);
      const parsed = record === undefined ? undefined : parses(record) ? (JSON.parse(record) as { mediaType?: unknown; size?: unknown }) : undefined;
      if (!parsed || typeof parsed.mediaType !== "string" || typeof parsed.size !== "number") audit.problems.push(where(`manifest link ${digest} is torn`));
      if (!has(digest)) {
        audit.problems.push(where(`manifest link ${digest} points to a missing blob`));
        continue;
      }
      if (kind === "hosted") {
        const bytes = await readFile(blobFile(root, digest)).catch(() => undefined);
        for (const referenced of bytes ? referencedDigests(bytes) : []) {
          if (!has(referenced)) audit.problems.push(where(`manifest ${digest} references missing blob ${referenced}`));
        }
      }
    }
    for (const digest of await linkedDigests(join(dir, "_layers"))) {
      if (!has(digest)) audit.problems.push(where(`layer link ${digest} points to a missing blob`));
    }
    for (const tag of await list(join(dir, "_tags"))) {
      const text = (await readFile(join(dir, "_tags", tag), "utf8").catch(() => "")).trim();
      if (!/^sha(256|512):[a-f0-9]+$/.test(text)) {
        audit.problems.push(where(`tag ${tag} is torn (${JSON.stringify(text.slice(0, 80))})`));
      } else if (!manifests.has(text)) {
        if (kind === "hosted") audit.problems.push(where(`tag ${tag} points to ${text}, which the repository does not hold`));
        else audit.staleMirrorTags++;
      }
    }
    for (const subject of await linkedDigests(join(dir, "_referrers"))) {
      for (const entry of await list(join(dir, "_referrers", ...subject.split(":")))) {
        const referrer = entry.replace("-", ":");
        if (!manifests.has(referrer)) audit.problems.push(where(`referrer ${referrer} of ${subject} is not a manifest of the repository`));
      }
    }
    for (const child of children) {
      if (!child.startsWith("_")) await walk(join(dir, child), name ? `${name}/${child}` : child);
    }
  };
  await walk(base, "");
}

async function auditUploads(dir: string, audit: StoreAudit): Promise<void> {
  for (const id of await list(dir)) {
    if (!UPLOAD_ID.test(id)) {
      audit.problems.push(`uploads/${id}: not an upload id`);
      continue;
    }
    const info = await readFile(join(dir, id, "info"), "utf8").catch(() => undefined);
    if (info === undefined) {
      audit.orphanUploadDirs++;
      continue;
    }
    if (!parses(info)) audit.problems.push(`uploads/${id}/info is torn`);
    let expected = 0;
    for (const part of (await list(join(dir, id, "parts"))).sort()) {
      if (!PART_NAME.test(part)) {
        audit.problems.push(`uploads/${id}/parts/${part}: not a part name`);
        continue;
      }
      if (Number(part) !== expected) audit.problems.push(`uploads/${id}: part ${part} does not continue at byte ${expected}`);
      expected = Number(part) + ((await stat(join(dir, id, "parts", part)).catch(() => undefined))?.size ?? 0);
    }
    audit.uploads.set(id, expected);
  }
}

/** `ALG:HEX` for every `<dir>/ALG/HEX`. */
async function linkedDigests(dir: string): Promise<string[]> {
  const digests: string[] = [];
  for (const algorithm of await list(dir)) {
    for (const hex of await list(join(dir, algorithm))) digests.push(`${algorithm}:${hex}`);
  }
  return digests;
}

function blobFile(root: string, digest: string): string {
  const [algorithm, hex] = digest.split(":");
  return join(root, "blobs", algorithm, hex.slice(0, 2), hex);
}

/** Digests a hosted manifest or index needs in the store: config, non-foreign layers, child manifests. */
function referencedDigests(bytes: Buffer): string[] {
  try {
    const body = JSON.parse(bytes.toString("utf8")) as { config?: { digest?: unknown }; layers?: { digest?: unknown; urls?: unknown }[]; manifests?: { digest?: unknown }[] };
    const layers = Array.isArray(body.layers) ? body.layers.filter((l) => !(Array.isArray(l?.urls) && l.urls.length > 0)) : [];
    const descriptors = [body.config, ...layers, ...(Array.isArray(body.manifests) ? body.manifests : [])];
    return descriptors.map((d) => d?.digest).filter((d): d is string => typeof d === "string");
  } catch {
    return [];
  }
}

async function hashFile(path: string, algorithm: string): Promise<{ hex: string; size: number } | undefined> {
  const hash = createHash(algorithm);
  let size = 0;
  try {
    const info = await stat(path);
    if (info.size <= SMALL_FILE) {
      const bytes = await readFile(path);
      hash.update(bytes);
      size = bytes.length;
    } else {
      for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
      }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  return { hex: hash.digest("hex"), size };
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return [];
    throw err;
  }
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
