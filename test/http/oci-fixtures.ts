import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type supertest from "supertest";
import type { HostedApp } from "../support/hosted-app.js";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";
export const OCI_EMPTY = "application/vnd.oci.empty.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
export const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/** A digest no test ever pushes. */
export const ABSENT_DIGEST = `sha256:${"0".repeat(64)}`;

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export interface Content {
  bytes: Buffer;
  digest: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string };
}

export function blob(content: string | Buffer): Content {
  const bytes = Buffer.from(content);
  return { bytes, digest: sha256(bytes) };
}

export function descriptorOf(content: Content, mediaType: string, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: content.digest, size: content.bytes.length, ...extra };
}

export interface Manifest extends Content {
  mediaType: string;
}

/** Serialises with tabs, as Go clients do, so a byte-for-byte round trip is visible. */
export function manifest(document: Record<string, unknown>, mediaType = (document.mediaType as string) ?? OCI_MANIFEST): Manifest {
  const bytes = Buffer.from(JSON.stringify(document, null, "\t"));
  return { bytes, digest: sha256(bytes), mediaType };
}

export interface ImageOptions {
  mediaType?: string;
  configMediaType?: string;
  layerMediaType?: string;
  artifactType?: string;
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export function imageManifest(config: Content, layers: Content[], options: ImageOptions = {}): Manifest {
  const mediaType = options.mediaType ?? OCI_MANIFEST;
  const docker = mediaType === DOCKER_MANIFEST;
  const document: Record<string, unknown> = { schemaVersion: 2, mediaType };
  if (options.artifactType) document.artifactType = options.artifactType;
  document.config = descriptorOf(config, options.configMediaType ?? (docker ? DOCKER_CONFIG : OCI_CONFIG));
  document.layers = layers.map((layer) => descriptorOf(layer, options.layerMediaType ?? (docker ? DOCKER_LAYER : OCI_LAYER)));
  if (options.subject) document.subject = options.subject;
  if (options.annotations) document.annotations = options.annotations;
  return manifest(document, mediaType);
}

export function indexManifest(children: Manifest[], options: Omit<ImageOptions, "configMediaType" | "layerMediaType"> = {}): Manifest {
  const mediaType = options.mediaType ?? OCI_INDEX;
  const architectures = ["amd64", "arm64", "ppc64le", "s390x"];
  const document: Record<string, unknown> = { schemaVersion: 2, mediaType };
  if (options.artifactType) document.artifactType = options.artifactType;
  document.manifests = children.map((child, i) => descriptorOf(child, child.mediaType, { platform: { os: "linux", architecture: architectures[i % 4] } }));
  if (options.subject) document.subject = options.subject;
  if (options.annotations) document.annotations = options.annotations;
  return manifest(document, mediaType);
}

/** A distinct config blob per call, so every image built from it has its own digest. */
let configs = 0;
export function uniqueConfig(): Content {
  configs += 1;
  return blob(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, author: `test ${configs} ${process.hrtime.bigint()}` }));
}

/** Pushes a blob with a single `POST ?digest=` and checks it was stored. */
export async function pushBlob(app: HostedApp, name: string, content: Content): Promise<void> {
  await app
    .request()
    .post(`/v2/${name}/blobs/uploads/?digest=${content.digest}`)
    .set("Content-Type", "application/octet-stream")
    .send(content.bytes)
    .expect(201);
}

export async function pushManifest(app: HostedApp, name: string, reference: string, content: Manifest): Promise<supertest.Response> {
  return putManifest(app, name, reference, content.bytes, content.mediaType).expect(201);
}

/** A manifest PUT; the body goes as text because superagent would JSON-encode a Buffer sent as `+json`. */
export function putManifest(app: HostedApp, name: string, reference: string, body: Buffer | string, contentType?: string): supertest.Test {
  const request = app.request().put(`/v2/${name}/manifests/${reference}`);
  if (contentType !== undefined) request.set("Content-Type", contentType);
  return request.send(body.toString());
}

export interface PushedImage {
  config: Content;
  layers: Content[];
  manifest: Manifest;
}

/** Pushes a config, layers and their image manifest under `tag`. */
export async function pushImage(app: HostedApp, name: string, tag: string, options: ImageOptions & { layers?: Content[] } = {}): Promise<PushedImage> {
  const config = uniqueConfig();
  const layers = options.layers ?? [blob(`layer of ${config.digest}`)];
  for (const content of [config, ...layers]) await pushBlob(app, name, content);
  const image = imageManifest(config, layers, options);
  await pushManifest(app, name, tag, image);
  return { config, layers, manifest: image };
}

/** A supertest parser that keeps the body as raw bytes, whatever its Content-Type. */
export function rawBytes(response: unknown, done: (err: Error | null, body: Buffer) => void): void {
  const res = response as IncomingMessage; // superagent's node parsers get the raw IncomingMessage
  const chunks: Buffer[] = [];
  res.on("data", (chunk: Buffer) => chunks.push(chunk));
  res.on("end", () => done(null, Buffer.concat(chunks)));
  res.on("error", (err) => done(err, Buffer.alloc(0)));
}

/** The first error code of a distribution-spec error body. */
export function errorCode(res: supertest.Response): string {
  const body = res.body as { errors?: { code?: string }[] };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `expected an error body, got ${res.text}`);
  return body.errors[0].code ?? "";
}
