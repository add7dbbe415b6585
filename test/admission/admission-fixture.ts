import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { buildImage, type BuiltImage } from "../support/oci-image-builder.js";
import { OriginRegistry } from "../support/origin-registry.js";
import { skopeoCopy } from "../support/skopeo.js";
import { makeTempDir } from "../support/temp-dir.js";

export const AMD64 = { os: "linux", architecture: "amd64" };
export const ARM64 = { os: "linux", architecture: "arm64", variant: "v8" };

/** The group/version of each kind the tests send. */
const GROUP_VERSION: Record<string, [string, string]> = {
  Pod: ["", "v1"],
  PodTemplate: ["", "v1"],
  ReplicationController: ["", "v1"],
  Deployment: ["apps", "v1"],
  StatefulSet: ["apps", "v1"],
  DaemonSet: ["apps", "v1"],
  ReplicaSet: ["apps", "v1"],
  Job: ["batch", "v1"],
  CronJob: ["batch", "v1"],
  ConfigMap: ["", "v1"],
};

export interface ReviewOptions {
  namespace?: string;
  operation?: "CREATE" | "UPDATE" | "DELETE" | "CONNECT";
  uid?: string;
  subResource?: string;
  /** The object before an UPDATE. */
  oldObject?: unknown;
}

/** An AdmissionReview as the API server sends it for `object` of `kind`. */
export function admissionReview(kind: string, object: unknown, options: ReviewOptions = {}): Record<string, unknown> {
  const [group, version] = GROUP_VERSION[kind];
  const resource = `${kind.toLowerCase()}s`;
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: options.uid ?? randomUUID(),
      kind: { group, version, kind },
      resource: { group, version, resource },
      requestKind: { group, version, kind },
      requestResource: { group, version, resource },
      ...(options.subResource ? { subResource: options.subResource } : {}),
      name: "web",
      namespace: options.namespace ?? "default",
      operation: options.operation ?? "CREATE",
      userInfo: { username: "kubernetes-admin", groups: ["system:masters", "system:authenticated"] },
      object: options.operation === "DELETE" ? null : object,
      oldObject: options.oldObject ?? null,
      dryRun: false,
      options: { apiVersion: "meta.k8s.io/v1", kind: "CreateOptions" },
    },
  };
}

/** A workload of `kind` whose pod template (or pod) has these containers. */
export function workload(kind: string, containers: Record<string, unknown>[], extra: { initContainers?: Record<string, unknown>[]; ephemeralContainers?: Record<string, unknown>[] } = {}): Record<string, unknown> {
  const podSpec = { containers, ...extra };
  const [group, version] = GROUP_VERSION[kind];
  const meta = { apiVersion: group ? `${group}/${version}` : version, kind, metadata: { name: "web", namespace: "default" } };
  const template = { metadata: { labels: { app: "web" } }, spec: podSpec };
  switch (kind) {
    case "Pod":
      return { ...meta, spec: podSpec };
    case "PodTemplate":
      return { ...meta, template };
    case "CronJob":
      return { ...meta, spec: { schedule: "* * * * *", jobTemplate: { spec: { template } } } };
    default:
      return { ...meta, spec: { selector: { matchLabels: { app: "web" } }, template } };
  }
}

export interface ReviewResponse {
  uid: string;
  allowed: boolean;
  patchType?: string;
  patch?: string;
  warnings?: string[];
  status?: { code: number; reason?: string; message: string };
}

export interface ReviewAnswer {
  httpStatus: number;
  body: Record<string, unknown>;
  response: ReviewResponse;
  /** The decoded JSONPatch, [] when there is none. */
  patch: PatchOperation[];
}

export interface PatchOperation {
  op: string;
  path: string;
  value?: unknown;
}

/** POSTs a review (an object, or raw text) to `url` and reads the answer. */
export async function postReview(url: string, body: unknown, init: RequestInit = {}): Promise<ReviewAnswer> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
  const parsed = (await response.json()) as Record<string, unknown>;
  const review = (parsed.response ?? {}) as ReviewResponse;
  let patch: PatchOperation[] = [];
  if (review.patch !== undefined) {
    assert.equal(review.patchType, "JSONPatch");
    patch = JSON.parse(Buffer.from(review.patch, "base64").toString("utf8")) as PatchOperation[];
  }
  return { httpStatus: response.status, body: parsed, response: review, patch };
}

/**
 * Applies a JSONPatch (RFC 6902 add/replace) as the API server would, refusing what it
 * would refuse: a replace of a missing member, an add under a missing parent.
 */
export function applyPatch<T>(document: T, patch: PatchOperation[]): T {
  const result = structuredClone(document) as unknown;
  for (const operation of patch) {
    assert.ok(operation.op === "add" || operation.op === "replace", `unexpected op ${operation.op}`);
    const segments = operation.path.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
    const last = segments.pop()!;
    let parent = result as Record<string, unknown>;
    for (const segment of segments) {
      parent = parent[segment] as Record<string, unknown>;
      assert.ok(parent !== null && typeof parent === "object", `${operation.path}: no parent`);
    }
    if (operation.op === "replace") assert.ok(last in parent, `${operation.path}: replace of a missing member`);
    parent[last] = operation.value;
  }
  return result as T;
}

/** The containers of a pod spec after a patch, by list. */
export function podSpecOf(object: Record<string, unknown>, kind: string): Record<string, Record<string, unknown>[]> {
  const path = kind === "Pod" ? ["spec"] : kind === "PodTemplate" ? ["template", "spec"] : kind === "CronJob" ? ["spec", "jobTemplate", "spec", "template", "spec"] : ["spec", "template", "spec"];
  return path.reduce<Record<string, unknown>>((node, key) => node[key] as Record<string, unknown>, object) as Record<string, Record<string, unknown>[]>;
}

/** A real Distribution origin holding what Docker Hub would: `library/nginx:1.25` (two platforms) and `library/busybox:latest`. */
export interface DockerHubOrigin {
  origin: OriginRegistry;
  nginx: BuiltImage;
  busybox: BuiltImage;
  close(): Promise<void>;
}

export async function startDockerHubOrigin(): Promise<DockerHubOrigin> {
  const work = await makeTempDir("admission-images");
  const origin = await OriginRegistry.start();
  try {
    const layout = join(work.path, "layout");
    const nginx = await buildImage(layout, { ref: "nginx", platforms: [AMD64, ARM64] });
    const busybox = await buildImage(layout, { ref: "busybox" });
    await skopeoCopy(nginx.source, `docker://${origin.host}/library/nginx:1.25`, { all: true, preserveDigests: true });
    await skopeoCopy(busybox.source, `docker://${origin.host}/library/busybox:latest`, { preserveDigests: true });
    return {
      origin,
      nginx,
      busybox,
      close: async () => {
        await origin.close();
        await work.remove();
      },
    };
  } catch (err) {
    await origin.close();
    await work.remove();
    throw err;
  }
}
