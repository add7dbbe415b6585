import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";

/** What a storage root (or bucket prefix) holds at its top level; anything else is a stray write. */
const TOP_LEVEL = new Set(["blobs", "repositories", "mirrors", "uploads", "holders", "synthesized", "cache", "auth", "_tmp", "_probe", "_lease"]);
/** A tail object of an upload session on S3. */
const TAIL_NAME = /^\d{16}$/;
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
  /** Writes a crash may leave, with their modification times: names in `_tmp/`; on S3, unfinished multipart uploads (`KEY UPLOADID`). */
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
 * Audits a store, on disk (a storage root) or in a bucket (an s3View), as crash and full-disk
 * tests need it: every blob under `blobs/ALG/XX/HEX` hashes to HEX; every manifest, layer, tag
 * and referrer link of a hosted repository, and every manifest and layer link of a mirror,
 * points to a blob that is there; hosted manifests' config, layers and children are there;
 * records parse; upload sessions' parts (and, on S3, tail objects) are contiguous. Best run
 * while berth is stopped (or idle): a collection running meanwhile can delete what the audit
 * is reading, which the audit then reports.
 */
export async function auditStore(store: string | StoreView): Promise<StoreAudit> {
  const view = typeof store === "string" ? filesystemView(store) : store;
  const audit: StoreAudit = { blobs: new Set(), problems: [], tempFiles: await view.pendingWrites(), uploads: new Map(), orphanUploadDirs: 0, staleMirrorTags: 0, blobBytes: 0 };
  for (const name of await view.list("")) {
    if (!TOP_LEVEL.has(name)) audit.problems.push(`unexpected entry ${name} at the storage root`);
  }
  await auditBlobs(view, audit);
  await auditRepositories(view, "repositories", "hosted", audit);
  for (const prefix of await view.list("mirrors")) await auditRepositories(view, `mirrors/${prefix}`, "mirror", audit);
  await auditUploads(view, audit);
  await auditHolders(view, audit);
  const access = await view.read("cache/last-access.json");
  if (access !== undefined && !parses(access.toString("utf8"))) audit.problems.push("cache/last-access.json is torn");
  return audit;
}

/** Which repositories linked each blob: a hint for mounts, but never a torn record. */
async function auditHolders(view: StoreView, audit: StoreAudit): Promise<void> {
  for (const algorithm of await view.list("holders")) {
    for (const prefix of await view.list(`holders/${algorithm}`)) {
      for (const hex of await view.list(`holders/${algorithm}/${prefix}`)) {
        const text = await view.read(`holders/${algorithm}/${prefix}/${hex}`);
        if (text !== undefined && !parses(text.toString("utf8"))) audit.problems.push(`holders/${algorithm}/${prefix}/${hex} is torn`);
      }
    }
  }
}

/** A store as the audit reads it: a filesystem root, or a bucket prefix as one listing saw it. */
export interface StoreView {
  /** Names directly under a `/`-separated path ("" for the root); empty when absent. */
  list(path: string): Promise<string[]>;
  read(path: string): Promise<Buffer | undefined>;
  size(path: string): Promise<number | undefined>;
  /** Whether the object exists now, asked of the store itself (not a listing). */
  exists(path: string): Promise<boolean>;
  /** The object's bytes as a stream; undefined when absent. */
  stream(path: string): Promise<Readable | undefined>;
  /** Writes a crash may leave behind (temp files; unfinished multipart uploads). */
  pendingWrites(): Promise<{ name: string; modified: Date }[]>;
  /** A hash this view's store computed before for the object as it is now (same ETag), if any. */
  hashedBefore?(path: string, algorithm: string): { hex: string; size: number } | undefined;
  remember?(path: string, algorithm: string, hashed: { hex: string; size: number }): void;
}

/** Objects an S3 audit hashed, by bucket, key and ETag: a later audit of an unchanged object need not read it again. */
const s3Hashes = new Map<string, { hex: string; size: number }>();

export function filesystemView(root: string): StoreView {
  const file = (path: string) => (path === "" ? root : join(root, ...path.split("/")));
  return {
    list: (path) => list(file(path)),
    read: (path) => readFile(file(path)).catch(() => undefined),
    size: async (path) => (await stat(file(path)).catch(() => undefined))?.size,
    exists: async (path) => (await stat(file(path)).catch(() => undefined)) !== undefined,
    stream: async (path) => ((await stat(file(path)).catch(() => undefined)) ? createReadStream(file(path), { highWaterMark: 1024 * 1024 }) : undefined),
    pendingWrites: async () => {
      const found: { name: string; modified: Date }[] = [];
      for (const name of await list(join(root, "_tmp"))) {
        const info = await stat(join(root, "_tmp", name)).catch(() => undefined);
        if (info) found.push({ name, modified: info.mtime });
      }
      return found;
    },
  };
}

/** A bucket prefix, from one flat listing (objects written afterwards are not seen); reads go to S3. */
export async function s3View(client: S3Client, bucket: string, prefix = ""): Promise<StoreView> {
  const sizes = new Map<string, number>();
  const etags = new Map<string, string>();
  const children = new Map<string, Set<string>>();
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
    for (const object of page.Contents ?? []) {
      const path = object.Key!.slice(prefix.length);
      sizes.set(path, object.Size ?? 0);
      if (object.ETag) etags.set(path, object.ETag);
      const segments = path.split("/");
      for (let i = 0; i < segments.length; i++) {
        const parent = segments.slice(0, i).join("/");
        if (!children.has(parent)) children.set(parent, new Set());
        children.get(parent)!.add(segments[i]);
      }
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const stream = async (path: string): Promise<Readable | undefined> => {
    if (!sizes.has(path)) return undefined;
    const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}${path}` })).catch((err: { $metadata?: { httpStatusCode?: number } }) => {
      if (err.$metadata?.httpStatusCode === 404) return undefined;
      throw err;
    });
    return answer?.Body as Readable | undefined;
  };
  return {
    list: async (path) => [...(children.get(path) ?? [])],
    size: async (path) => sizes.get(path),
    exists: async (path) =>
      client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}${path}` })).then(
        () => true,
        () => false,
      ),
    stream,
    read: async (path) => {
      const body = await stream(path);
      if (!body) return undefined;
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    },
    hashedBefore: (path, algorithm) => s3Hashes.get(`${bucket} ${prefix}${path} ${etags.get(path)} ${algorithm}`),
    remember: (path, algorithm, hashed) => {
      if (etags.has(path)) s3Hashes.set(`${bucket} ${prefix}${path} ${etags.get(path)} ${algorithm}`, hashed);
    },
    pendingWrites: async () => {
      const uploads = (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }))).Uploads ?? [];
      return uploads.map((u) => ({ name: `${u.Key} ${u.UploadId}`, modified: u.Initiated ?? new Date(0) }));
    },
  };
}

/** The sha256 digest of a byte string, as `sha256:HEX`. */
export function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

async function auditBlobs(view: StoreView, audit: StoreAudit): Promise<void> {
  for (const algorithm of await view.list("blobs")) {
    if (!(algorithm in HEX_LENGTH)) {
      audit.problems.push(`blobs/${algorithm}: unknown algorithm`);
      continue;
    }
    for (const prefix of await view.list(`blobs/${algorithm}`)) {
      for (const hex of await view.list(`blobs/${algorithm}/${prefix}`)) {
        const where = `blobs/${algorithm}/${prefix}/${hex}`;
        if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex) || !hex.startsWith(prefix)) {
          audit.problems.push(`${where}: not a blob name`);
          continue;
        }
        const hashed = await hashObject(view, where, algorithm);
        if (hashed === undefined) continue; // deleted while we looked
        if (hashed.hex !== hex) audit.problems.push(`${where}: content hashes to ${hashed.hex}`);
        audit.blobs.add(`${algorithm}:${hex}`);
        audit.blobBytes += hashed.size;
      }
    }
  }
}

async function auditRepositories(view: StoreView, base: string, kind: "hosted" | "mirror", audit: StoreAudit): Promise<void> {
  // A listing may lag a write (Swift's do): a blob the listing missed is asked for by name before it counts as missing.
  const has = async (digest: string) => audit.blobs.has(digest) || (await view.exists(blobPath(digest)));
  const walk = async (dir: string, name: string): Promise<void> => {
    const children = await view.list(dir);
    const where = (path: string) => `${kind} ${name}: ${path}`;
    const manifests = new Set<string>();
    for (const digest of await linkedDigests(view, `${dir}/_manifests`)) {
      manifests.add(digest);
      const record = (await view.read(`${dir}/_manifests/${digest.replace(":", "/")}`))?.toString("utf8");
      const parsed = record === undefined ? undefined : parses(record) ? (JSON.parse(record) as { mediaType?: unknown; size?: unknown }) : undefined;
      if (!parsed || typeof parsed.mediaType !== "string" || typeof parsed.size !== "number") audit.problems.push(where(`manifest link ${digest} is torn`));
      if (!(await has(digest))) {
        audit.problems.push(where(`manifest link ${digest} points to a missing blob`));
        continue;
      }
      if (kind === "hosted") {
        const bytes = await view.read(blobPath(digest));
        for (const referenced of bytes ? referencedDigests(bytes) : []) {
          if (!(await has(referenced))) audit.problems.push(where(`manifest ${digest} references missing blob ${referenced}`));
        }
      }
    }
    for (const digest of await linkedDigests(view, `${dir}/_layers`)) {
      if (!(await has(digest))) audit.problems.push(where(`layer link ${digest} points to a missing blob`));
    }
    for (const tag of await view.list(`${dir}/_tags`)) {
      const text = ((await view.read(`${dir}/_tags/${tag}`))?.toString("utf8") ?? "").trim();
      if (!/^sha(256|512):[a-f0-9]+$/.test(text)) {
        audit.problems.push(where(`tag ${tag} is torn (${JSON.stringify(text.slice(0, 80))})`));
      } else if (!manifests.has(text)) {
        if (kind === "hosted") audit.problems.push(where(`tag ${tag} points to ${text}, which the repository does not hold`));
        else audit.staleMirrorTags++;
      }
    }
    for (const subject of await linkedDigests(view, `${dir}/_referrers`)) {
      for (const entry of await view.list(`${dir}/_referrers/${subject.replace(":", "/")}`)) {
        const referrer = entry.replace("-", ":");
        if (!manifests.has(referrer)) audit.problems.push(where(`referrer ${referrer} of ${subject} is not a manifest of the repository`));
      }
    }
    for (const child of children) {
      if (!child.startsWith("_")) await walk(`${dir}/${child}`, name ? `${name}/${child}` : child);
    }
  };
  await walk(base, "");
}

async function auditUploads(view: StoreView, audit: StoreAudit): Promise<void> {
  for (const id of await view.list("uploads")) {
    if (!UPLOAD_ID.test(id)) {
      audit.problems.push(`uploads/${id}: not an upload id`);
      continue;
    }
    const info = (await view.read(`uploads/${id}/info`))?.toString("utf8");
    if (info === undefined) {
      audit.orphanUploadDirs++;
      continue;
    }
    if (!parses(info)) {
      audit.problems.push(`uploads/${id}/info is torn`);
      continue;
    }
    const record = JSON.parse(info) as { size?: number; tail?: { offset: number; size: number }[]; multipart?: { parts: { size: number }[] } };
    if (record.tail) {
      audit.uploads.set(id, await auditS3Session(view, id, record as Required<Pick<typeof record, "size" | "tail">> & typeof record, audit));
      continue;
    }
    let expected = 0;
    for (const part of (await view.list(`uploads/${id}/parts`)).sort()) {
      if (!PART_NAME.test(part)) {
        audit.problems.push(`uploads/${id}/parts/${part}: not a part name`);
        continue;
      }
      if (Number(part) !== expected) audit.problems.push(`uploads/${id}: part ${part} does not continue at byte ${expected}`);
      expected = Number(part) + ((await view.size(`uploads/${id}/parts/${part}`)) ?? 0);
    }
    audit.uploads.set(id, expected);
  }
}

/** An S3 upload session: its parts and tail objects add up to its size, the tail continuing where the parts end. */
async function auditS3Session(view: StoreView, id: string, record: { size: number; tail: { offset: number; size: number }[]; multipart?: { parts: { size: number }[] } }, audit: StoreAudit): Promise<number> {
  let expected = (record.multipart?.parts ?? []).reduce((sum, part) => sum + part.size, 0);
  for (const tail of record.tail) {
    const name = tail.offset.toString().padStart(16, "0");
    if (tail.offset !== expected) audit.problems.push(`uploads/${id}: tail ${name} does not continue at byte ${expected}`);
    const size = await view.size(`uploads/${id}/tail/${name}`);
    if (size !== tail.size) audit.problems.push(`uploads/${id}: tail ${name} holds ${size ?? "no"} bytes, not ${tail.size}`);
    expected = tail.offset + tail.size;
  }
  if (expected !== record.size) audit.problems.push(`uploads/${id}: parts and tail hold ${expected} bytes, the session says ${record.size}`);
  for (const name of await view.list(`uploads/${id}/tail`)) if (!TAIL_NAME.test(name)) audit.problems.push(`uploads/${id}/tail/${name}: not a tail name`);
  return record.size;
}

/** `ALG:HEX` for every `<dir>/ALG/HEX`. */
async function linkedDigests(view: StoreView, dir: string): Promise<string[]> {
  const digests: string[] = [];
  for (const algorithm of await view.list(dir)) {
    for (const hex of await view.list(`${dir}/${algorithm}`)) digests.push(`${algorithm}:${hex}`);
  }
  return digests;
}

function blobPath(digest: string): string {
  const [algorithm, hex] = digest.split(":");
  return `blobs/${algorithm}/${hex.slice(0, 2)}/${hex}`;
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

async function hashObject(view: StoreView, path: string, algorithm: string): Promise<{ hex: string; size: number } | undefined> {
  const before = view.hashedBefore?.(path, algorithm);
  if (before) return before;
  const hashed = await hashBytes(view, path, algorithm);
  if (hashed) view.remember?.(path, algorithm, hashed);
  return hashed;
}

async function hashBytes(view: StoreView, path: string, algorithm: string): Promise<{ hex: string; size: number } | undefined> {
  const hash = createHash(algorithm);
  let size = 0;
  const known = await view.size(path);
  if (known === undefined) return undefined;
  if (known <= SMALL_FILE) {
    const bytes = await view.read(path);
    if (!bytes) return undefined; // deleted while we looked
    hash.update(bytes);
    size = bytes.length;
  } else {
    const body = await view.stream(path);
    if (!body) return undefined;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
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
