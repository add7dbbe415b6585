import { createHash } from "node:crypto";
import { copyFile, link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeLayerBlob, type LayerCompression } from "./layer-blob.js";
import { randomSeed } from "./seeded-random.js";

export const MEDIA_TYPES = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerTar: "application/vnd.oci.image.layer.v1.tar",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";

/** An image platform, as in an index entry. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface LayerSpec {
  /** Size in bytes of the one file the layer's tar holds. */
  size: number;
  /** Default "gzip"; use "gzip-stored" or "none" (OCI only) for large layers, whose random content gzip cannot shrink anyway. */
  compression?: LayerCompression;
}

/** What to build: one image, single-platform or multi-platform. */
export interface ImageSpec {
  /** Its name in the layout's index.json: `skopeo copy oci:DIR:<ref> ...`. */
  ref: string;
  /**
   * OCI media types (default), or Docker schema2 manifests and manifest list. skopeo's `oci:`
   * transport only reads OCI media types, so a Docker image is also exported as a skopeo
   * `dir:` layout under `<layoutDir>/dir/`, and its `source` names that.
   */
  format?: "oci" | "docker";
  /** Default [linux/amd64]. */
  platforms?: Platform[];
  /** The layers of each platform's image (each platform gets its own content). Default one 1 KiB layer. */
  layers?: LayerSpec[];
  /** Top level is an index / manifest list; default: when there is more than one platform. */
  index?: boolean;
  /**
   * Also names each platform's manifest `<ref>-<architecture>`: the same manifest (same
   * digest) as the index entry, to push as Kubernetes' `pause-amd64`-style images.
   */
  archRefs?: boolean;
  /**
   * The same seed builds the same bytes (the same digests); default a random seed. A layer
   * depends only on the seed, its platform and its position, so images built with one seed
   * share their layers.
   */
  seed?: string;
}

/** A blob written to the layout, as a descriptor names it. */
export interface BuiltBlob {
  digest: string;
  mediaType: string;
  size: number;
}

export interface BuiltLayer extends BuiltBlob {
  /** `sha256:` of the uncompressed tar. */
  diffId: string;
}

/** One platform's image manifest. */
export interface BuiltManifest extends BuiltBlob {
  platform: Platform;
  config: BuiltBlob;
  layers: BuiltLayer[];
  /** skopeo's name for this manifest alone, when `archRefs` was set (`oci:DIR:<ref>-<arch>` or `dir:...`). */
  source?: string;
}

/** What `buildImage` wrote; the top-level descriptor is the index when there is one, else the only manifest. */
export interface BuiltImage extends BuiltBlob {
  layoutDir: string;
  ref: string;
  /** skopeo's name for it: `oci:<layoutDir>:<ref>`, or `dir:<layoutDir>/dir/<ref>` for the Docker format. */
  source: string;
  manifests: BuiltManifest[];
  /** Every digest the image consists of: top level, manifests, configs and layers. */
  digests: string[];
}

/**
 * Writes an image into the OCI image layout at `layoutDir` (`oci-layout`, `index.json`,
 * `blobs/sha256/`), creating the layout or adding to it; build images into one layout one
 * after another, never concurrently. Layers are streamed to disk, so sizes of hundreds of
 * MiB cost no memory.
 */
export async function buildImage(layoutDir: string, spec: ImageSpec): Promise<BuiltImage> {
  const format = spec.format ?? "oci";
  const platforms = spec.platforms ?? [{ os: "linux", architecture: "amd64" }];
  const layers = spec.layers ?? [{ size: 1024 }];
  const seed = spec.seed ?? randomSeed();
  const asIndex = spec.index ?? platforms.length > 1;
  if (platforms.length === 0) throw new Error("an image needs at least one platform");
  if (!asIndex && platforms.length > 1) throw new Error("several platforms need an index");
  const types = format === "oci" ? OCI_TYPES : DOCKER_TYPES;

  const blobsDir = join(layoutDir, "blobs", "sha256");
  await mkdir(blobsDir, { recursive: true });
  await writeFile(join(layoutDir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const writeJson = async (mediaType: string, value: unknown): Promise<BuiltBlob> => {
    const bytes = Buffer.from(JSON.stringify(value));
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    await writeFile(join(blobsDir, hexOf(digest)), bytes);
    return { digest, mediaType, size: bytes.length };
  };

  const manifests: BuiltManifest[] = [];
  for (const platform of platforms) {
    const name = platformName(platform);
    const builtLayers: BuiltLayer[] = [];
    for (const [i, layer] of layers.entries()) {
      const compression = layer.compression ?? "gzip";
      if (compression === "none" && format === "docker") throw new Error("Docker schema2 has no uncompressed layer media type");
      const blob = await writeLayerBlob(blobsDir, {
        fileName: `layer-${i}.bin`,
        contentSize: layer.size,
        seed: `${seed}/${name}/${i}`,
        compression,
      });
      builtLayers.push({ ...blob, mediaType: compression === "none" ? MEDIA_TYPES.ociLayerTar : types.layerGzip });
    }
    const config = await writeJson(types.config, {
      created: "2024-01-01T00:00:00Z",
      ...platform,
      config: { Env: ["PATH=/usr/local/bin:/usr/bin:/bin"], Labels: { "org.berth.test.ref": spec.ref, "org.berth.test.seed": seed } },
      rootfs: { type: "layers", diff_ids: builtLayers.map((layer) => layer.diffId) },
      history: builtLayers.map((_, i) => ({ created: "2024-01-01T00:00:00Z", created_by: `berth test layer ${i}` })),
    });
    const manifest = await writeJson(types.manifest, {
      schemaVersion: 2,
      mediaType: types.manifest,
      config: descriptor(config),
      layers: builtLayers.map(descriptor),
    });
    manifests.push({ ...manifest, platform, config, layers: builtLayers });
  }
  const top = asIndex
    ? await writeJson(types.index, {
        schemaVersion: 2,
        mediaType: types.index,
        manifests: manifests.map((m) => ({ ...descriptor(m), platform: { ...m.platform } })),
      })
    : manifests[0];

  const archRef = (m: BuiltManifest) => `${spec.ref}-${m.platform.architecture}`;
  if (spec.archRefs && new Set(manifests.map(archRef)).size !== manifests.length) {
    throw new Error(`platforms of ${spec.ref} share an architecture: archRefs would collide`);
  }
  let source: string;
  if (format === "oci") {
    const refs = new Map<string, BuiltBlob>([[spec.ref, top]]);
    for (const m of spec.archRefs ? manifests : []) {
      refs.set(archRef(m), m);
      m.source = `oci:${layoutDir}:${archRef(m)}`;
    }
    await nameInLayout(layoutDir, refs);
    source = `oci:${layoutDir}:${spec.ref}`;
  } else {
    source = await exportDirLayout(layoutDir, spec.ref, top, asIndex ? manifests : []);
    for (const m of spec.archRefs ? manifests : []) m.source = await exportDirLayout(layoutDir, archRef(m), m, []);
  }

  return {
    ...descriptor(top),
    layoutDir,
    ref: spec.ref,
    source,
    manifests,
    digests: [...new Set([top.digest, ...manifests.flatMap((m) => [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)])])],
  };
}

/** The bytes of a blob in a layout (a manifest, index or config; not meant for large layers). */
export function readLayoutBlob(layoutDir: string, digest: string): Promise<Buffer> {
  return readFile(layoutBlobPath(layoutDir, digest));
}

/** Where a blob lives in a layout. */
export function layoutBlobPath(layoutDir: string, digest: string): string {
  const [algorithm, hex] = digest.split(":");
  return join(layoutDir, "blobs", algorithm, hex);
}

/** `os/architecture[/variant]`, the form `--platform` flags take. */
export function platformName(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
}

const OCI_TYPES = { manifest: MEDIA_TYPES.ociManifest, index: MEDIA_TYPES.ociIndex, config: MEDIA_TYPES.ociConfig, layerGzip: MEDIA_TYPES.ociLayerGzip };
const DOCKER_TYPES = { manifest: MEDIA_TYPES.dockerManifest, index: MEDIA_TYPES.dockerManifestList, config: MEDIA_TYPES.dockerConfig, layerGzip: MEDIA_TYPES.dockerLayerGzip };

function descriptor(blob: BuiltBlob): BuiltBlob {
  return { mediaType: blob.mediaType, digest: blob.digest, size: blob.size };
}

interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: (BuiltBlob & { annotations?: Record<string, string> })[];
}

/** Points the layout's index.json names at the given blobs, replacing earlier entries of the same names. */
async function nameInLayout(layoutDir: string, refs: Map<string, BuiltBlob>): Promise<void> {
  const path = join(layoutDir, "index.json");
  const existing = await readFile(path, "utf8").then(
    (text) => JSON.parse(text) as LayoutIndex,
    () => ({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] }) as LayoutIndex,
  );
  const kept = existing.manifests.filter((entry) => !refs.has(entry.annotations?.[REF_NAME_ANNOTATION] ?? ""));
  const added = [...refs].map(([ref, blob]) => ({ ...descriptor(blob), annotations: { [REF_NAME_ANNOTATION]: ref } }));
  await writeFile(path, JSON.stringify({ ...existing, manifests: [...kept, ...added] }));
}

/**
 * Writes skopeo's `dir:` layout of an image whose blobs are already in the OCI layout:
 * `manifest.json`, `<hex>.manifest.json` per index entry, every other blob as `<hex>`.
 */
async function exportDirLayout(layoutDir: string, name: string, top: BuiltBlob, instances: BuiltManifest[]): Promise<string> {
  const dir = join(layoutDir, "dir", name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "version"), "Directory Transport Version: 1.1\n");
  await copyFile(layoutBlobPath(layoutDir, top.digest), join(dir, "manifest.json"));
  const images = instances.length > 0 ? instances : [top as BuiltManifest];
  for (const m of instances) await copyFile(layoutBlobPath(layoutDir, m.digest), join(dir, `${hexOf(m.digest)}.manifest.json`));
  for (const digest of new Set(images.flatMap((m) => [m.config.digest, ...m.layers.map((l) => l.digest)]))) {
    await link(layoutBlobPath(layoutDir, digest), join(dir, hexOf(digest)));
  }
  return `dir:${dir}`;
}

function hexOf(digest: string): string {
  return digest.slice(digest.indexOf(":") + 1);
}
