import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/** An image as skopeo's `dir:` transport wrote it, with every file's content digest computed. */
export interface DirImage {
  /** The top-level manifest or index bytes (`manifest.json`). */
  manifest: Buffer;
  manifestDigest: string;
  /** Instance manifests of an index, by digest (`<hex>.manifest.json`). */
  instances: Map<string, Buffer>;
  /** Every other blob (configs, layers): file name as digest → sha256 of its content. */
  blobs: Map<string, string>;
  /** Every digest the image consists of: top level, instances, blobs (by file name). */
  digests: string[];
}

/** Reads a `skopeo copy ... dir:DIR` result, hashing each blob by streaming (layers may be large). */
export async function readDirImage(dir: string): Promise<DirImage> {
  const manifest = await readFile(join(dir, "manifest.json"));
  const instances = new Map<string, Buffer>();
  const blobs = new Map<string, string>();
  for (const name of (await readdir(dir)).sort()) {
    const instance = /^([0-9a-f]{64})\.manifest\.json$/.exec(name);
    if (instance) instances.set(`sha256:${instance[1]}`, await readFile(join(dir, name)));
    else if (/^[0-9a-f]{64}$/.test(name)) blobs.set(`sha256:${name}`, await sha256OfFile(join(dir, name)));
  }
  const manifestDigest = sha256Of(manifest);
  return { manifest, manifestDigest, instances, blobs, digests: [...new Set([manifestDigest, ...instances.keys(), ...blobs.keys()])] };
}

/** `sha256:<hex>` of some bytes. */
export function sha256Of(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** `sha256:<hex>` of a file's content, streamed. */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}
