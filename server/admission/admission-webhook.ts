import picomatch from "picomatch";
import type { AdmissionConfig } from "../../config/admission-schema.js";
import type { Logger } from "../log.js";
import type { Digest } from "../reference/digest.js";
import { ImageReference, ImageReferenceError } from "../reference/image-reference.js";
import type { AdmissionDecision, AdmissionRequest, PatchOperation } from "./admission-review.js";
import type { DigestResolver } from "./digest-resolver.js";
import type { ImageRouting } from "./image-routing.js";
import { containersOf, MalformedObjectError, type ContainerLocation } from "./pod-containers.js";
import { pullPolicyFor } from "./pull-policy.js";

/** What the webhook does to one container. */
interface ContainerOutcome {
  patch: PatchOperation[];
  warning?: string;
  /** Why the image could not be resolved, when pinning was asked for. */
  unresolved?: string;
}

/**
 * berth's mutating admission webhook: for every container of a pod or pod template it
 * rewrites images of mirrored registries to pull through berth, pins tags to the digests
 * berth resolves (caching the manifest), and writes down the pull policy Kubernetes would
 * have defaulted from the image as written, so the rewrite cannot change it.
 */
export class AdmissionWebhook {
  private readonly namespaceExcluded: (namespace: string) => boolean;
  private readonly imageExcluded: (name: string) => boolean;

  constructor(
    private readonly config: AdmissionConfig,
    private readonly routing: ImageRouting,
    private readonly resolver: DigestResolver,
    private readonly log: Logger,
  ) {
    this.namespaceExcluded = matcher(config.excludeNamespaces);
    this.imageExcluded = matcher(config.excludeImages);
  }

  async review(request: AdmissionRequest): Promise<AdmissionDecision> {
    if (request.operation !== "CREATE" && request.operation !== "UPDATE") return { allowed: true };
    if (request.namespace !== undefined && this.namespaceExcluded(request.namespace)) return { allowed: true };
    let containers: ContainerLocation[] | undefined;
    try {
      containers = mutableContainers(request);
    } catch (err) {
      if (!(err instanceof MalformedObjectError)) throw err;
      return { allowed: false, status: { code: 400, reason: "BadRequest", message: `berth: ${err.message}` } };
    }
    if (!containers) return { allowed: true };

    const resolutions = new Map<string, Promise<Digest>>();
    const resolve = (name: string, tag: string) => {
      const key = `${name}:${tag}`;
      if (!resolutions.has(key)) resolutions.set(key, this.resolver.resolve(name, tag));
      return resolutions.get(key)!;
    };
    const outcomes = await Promise.all(containers.map((location) => this.mutate(location, resolve)));
    const warnings = outcomes.flatMap((o) => (o.warning ? [o.warning] : []));
    const unresolved = outcomes.flatMap((o) => (o.unresolved ? [o.unresolved] : []));
    const patch = outcomes.flatMap((o) => o.patch);
    this.log.info({ uid: request.uid, kind: request.kind.kind, namespace: request.namespace, operations: patch.length, warnings }, "admission review");
    if (unresolved.length > 0 && this.config.failurePolicy === "Fail") {
      return { allowed: false, status: { code: 403, reason: "Forbidden", message: `berth: ${unresolved.join("; ")} (admission.failurePolicy: Fail)` } };
    }
    return { allowed: true, patch, ...(warnings.length > 0 ? { warnings } : {}) };
  }

  private async mutate({ pointer, container }: ContainerLocation, resolve: (name: string, tag: string) => Promise<Digest>): Promise<ContainerOutcome> {
    const image = container.image;
    // An image-less container fails the API server's validation, which runs after admission.
    if (typeof image !== "string" || image === "") return { patch: [] };
    let reference: ImageReference | undefined;
    let invalid: string | undefined;
    try {
      reference = ImageReference.parse(image);
    } catch (err) {
      if (!(err instanceof ImageReferenceError)) throw err;
      invalid = err.message;
    }
    if (this.imageExcluded(reference?.name ?? image)) return { patch: [] };

    const patch: PatchOperation[] = [];
    const label = `container ${JSON.stringify(container.name ?? pointer)}`;
    let warning: string | undefined;
    let unresolved: string | undefined;
    const name = reference && this.routing.berthName(reference);
    if (invalid !== undefined) {
      warning = `berth: ${label}: ${invalid}; left as it is`;
    } else if (reference && name !== undefined) {
      let digest = reference.digest;
      const tag = reference.pullTag;
      if (this.config.pinDigests && digest === undefined && tag !== undefined) {
        try {
          digest = await resolve(name, tag);
        } catch (err) {
          unresolved = `${label}: cannot resolve ${image} through berth: ${(err as Error).message}`;
          warning = `berth: ${unresolved}; left unpinned`;
        }
      }
      const rewritten = this.rewrite(image, reference, name, digest);
      if (rewritten !== image) patch.push({ op: "replace", path: `${pointer}/image`, value: rewritten });
    }
    if (container.imagePullPolicy === undefined || container.imagePullPolicy === null || container.imagePullPolicy === "") {
      patch.push({ op: "add", path: `${pointer}/imagePullPolicy`, value: pullPolicyFor(image).policy });
    }
    return { patch, ...(warning ? { warning } : {}), ...(unresolved ? { unresolved } : {}) };
  }

  /** Through berth when rewriting a mirrored registry's image; otherwise as written, pinned if it was resolved. */
  private rewrite(image: string, reference: ImageReference, name: string, digest: Digest | undefined): string {
    if (this.config.rewriteImages && this.config.registry !== undefined && !this.routing.namesBerth(reference)) {
      const moved = reference.movedTo(this.config.registry, name);
      return (digest ? moved.pinned(digest) : moved).toString();
    }
    return digest && !reference.digest ? `${image}@${digest}` : image;
  }
}

/**
 * The containers an operation may change. A CREATE may change any. An UPDATE may not
 * change a Job's pod template, nor a running pod's containers: on a pod's
 * `ephemeralcontainers` subresource only the ephemeral containers being added are new.
 */
function mutableContainers(request: AdmissionRequest): ContainerLocation[] | undefined {
  const containers = containersOf(request.kind.kind, request.object);
  if (!containers || request.operation === "CREATE") return containers;
  if (request.kind.kind === "Job") return [];
  if (request.kind.kind !== "Pod") return containers;
  if (request.subResource !== "ephemeralcontainers") return [];
  const existing = new Set((containersOf("Pod", request.oldObject ?? {}) ?? []).filter((c) => c.list === "ephemeralContainers").map((c) => c.container.name));
  return containers.filter((c) => c.list === "ephemeralContainers" && !existing.has(c.container.name));
}

function matcher(globs: readonly string[]): (value: string) => boolean {
  if (globs.length === 0) return () => false;
  return picomatch([...globs], { dot: true });
}
