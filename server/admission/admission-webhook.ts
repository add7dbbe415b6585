import picomatch from "picomatch";
import type { AdmissionConfig } from "../../config/admission-schema.js";
import type { Principal } from "../auth/access.js";
import type { Logger } from "../log.js";
import type { Digest } from "../reference/digest.js";
import { ImageReference, ImageReferenceError } from "../reference/image-reference.js";
import type { AdmissionDecision, AdmissionRequest, PatchOperation } from "./admission-review.js";
import type { DigestResolver } from "./digest-resolver.js";
import type { ImageRouting } from "./image-routing.js";
import { containersOf, controllerKindOf, isMapping, labelsOf, MalformedObjectError, podSpecOf, podTemplatePath, type ContainerLocation } from "./pod-containers.js";
import { pullPolicyFor } from "./pull-policy.js";

/** The label that opts a pod or a workload (and so its pods) out of the webhook. */
export const SKIP_LABEL = "berth.dev/admission";
export const SKIP_VALUE = "skip";

/** What the webhook does to one container. */
interface ContainerOutcome {
  patch: PatchOperation[];
  warning?: string;
  /** Why the image could not be resolved, when pinning was asked for. */
  unresolved?: string;
}

/** A container to mutate, with the image it had before an UPDATE (undefined when it is new). */
interface MutableContainer extends ContainerLocation {
  previousImage?: string;
}

/**
 * berth's mutating admission webhook: for every container of a pod or pod template it
 * rewrites images of mirrored registries to pull through berth, pins tags to the digests
 * berth resolves (caching the manifest) for the pod's tenant, and writes down the pull
 * policy Kubernetes would have defaulted from the image as written, so the rewrite cannot
 * change it.
 *
 * It never fights a controller: a template stamped from a parent (a Deployment's
 * ReplicaSet, a CronJob's Job) is left as the parent made it, and an UPDATE re-resolves only
 * the images it changes.
 */
export class AdmissionWebhook {
  private readonly namespaceExcluded: (namespace: string) => boolean;
  private readonly imageExcluded: (name: string) => boolean;
  private readonly tenants: { matches: (namespace: string) => boolean; tenant: string }[];

  constructor(
    private readonly config: AdmissionConfig,
    private readonly routing: ImageRouting,
    private readonly resolver: DigestResolver,
    private readonly log: Logger,
  ) {
    this.namespaceExcluded = matcher(config.excludeNamespaces);
    this.imageExcluded = matcher(config.excludeImages);
    this.tenants = config.namespaceTenants.map((entry) => ({ matches: matcher(entry.namespaces), tenant: entry.tenant }));
  }

  async review(request: AdmissionRequest): Promise<AdmissionDecision> {
    if (request.operation !== "CREATE" && request.operation !== "UPDATE") return { allowed: true };
    if (request.namespace !== undefined && this.namespaceExcluded(request.namespace)) return { allowed: true };
    const kind = request.kind.kind;
    let containers: MutableContainer[] | undefined;
    let principal: Principal;
    try {
      // The Deployment or CronJob that stamped this template was admitted itself: changing the
      // copy makes its controller disown it and stamp another, without end.
      if (podTemplatePath(kind) && controllerKindOf(request.object) !== undefined) return { allowed: true };
      if (labelsOf(request.object)[SKIP_LABEL] === SKIP_VALUE) return skipped(request);
      containers = mutableContainers(request);
      if (!containers) return { allowed: true };
      principal = this.principalOf(request);
    } catch (err) {
      if (!(err instanceof MalformedObjectError)) throw err;
      return { allowed: false, status: { code: 400, reason: "BadRequest", message: `berth: ${err.message}` } };
    }

    const resolutions = new Map<string, Promise<Digest>>();
    const resolve = (name: string, tag: string) => {
      const key = `${name}:${tag}`;
      if (!resolutions.has(key)) resolutions.set(key, this.resolver.resolve(name, tag, principal));
      return resolutions.get(key)!;
    };
    const outcomes = await Promise.all(containers.map((location) => this.mutate(location, resolve)));
    const warnings = outcomes.flatMap((o) => (o.warning ? [o.warning] : []));
    const unresolved = outcomes.flatMap((o) => (o.unresolved ? [o.unresolved] : []));
    const patch = outcomes.flatMap((o) => o.patch);
    this.log.info({ uid: request.uid, kind, namespace: request.namespace, subject: principal.subject, tenant: principal.tenant, operations: patch.length, warnings }, "admission review");
    if (unresolved.length > 0 && this.config.failurePolicy === "Fail") {
      return { allowed: false, status: { code: 403, reason: "Forbidden", message: `berth: ${unresolved.join("; ")} (admission.failurePolicy: Fail)` } };
    }
    return { allowed: true, patch, ...(warnings.length > 0 ? { warnings } : {}) };
  }

  /**
   * Whom the pod runs as: its service account (`default` when none is named) in its
   * namespace, whose tenant is the first `namespaceTenants` entry matching the namespace,
   * else the namespace itself, as for service-account tokens.
   */
  private principalOf(request: AdmissionRequest): Principal {
    const metadata = isMapping(request.object) ? request.object.metadata : undefined;
    const namespace = request.namespace ?? (isMapping(metadata) && typeof metadata.namespace === "string" ? metadata.namespace : "default");
    const spec = podSpecOf(request.kind.kind, request.object);
    const named = spec?.serviceAccountName ?? spec?.serviceAccount;
    const serviceAccount = typeof named === "string" && named !== "" ? named : "default";
    const tenant = this.tenants.find((entry) => entry.matches(namespace))?.tenant ?? namespace;
    return { subject: `system:serviceaccount:${namespace}:${serviceAccount}`, tenant, role: "serviceaccount" };
  }

  private async mutate({ pointer, container, previousImage }: MutableContainer, resolve: (name: string, tag: string) => Promise<Digest>): Promise<ContainerOutcome> {
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
    if (container.imagePullPolicy === undefined || container.imagePullPolicy === null || container.imagePullPolicy === "") {
      patch.push({ op: "add", path: `${pointer}/imagePullPolicy`, value: pullPolicyFor(image).policy });
    }
    // An UPDATE that leaves the image as it was must not re-resolve it: a moved tag would roll the workload.
    if (previousImage === image) return { patch };

    const label = `container ${JSON.stringify(container.name ?? pointer)}`;
    if (invalid !== undefined) return { patch, warning: `berth: ${label}: ${invalid}; left as it is` };
    const name = reference && this.routing.berthName(reference);
    if (!reference || name === undefined) return { patch };
    const kept = previousImage === undefined ? undefined : this.samePinned(previousImage, this.rewrite(image, reference, name, undefined));
    if (kept !== undefined) {
      patch.unshift({ op: "replace", path: `${pointer}/image`, value: kept });
      return { patch };
    }

    let digest = reference.digest;
    let warning: string | undefined;
    let unresolved: string | undefined;
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
    if (rewritten !== image) patch.unshift({ op: "replace", path: `${pointer}/image`, value: rewritten });
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

  /**
   * The image before an UPDATE when it is what this update's image becomes, already pinned:
   * a re-applied manifest (`nginx:1.25` over `.../nginx:1.25@sha256:...`) keeps its pin.
   */
  private samePinned(previous: string, target: string): string | undefined {
    try {
      const before = ImageReference.parse(previous);
      const after = ImageReference.parse(target);
      const same = before.digest !== undefined && after.digest === undefined && before.host === after.host && before.repository === after.repository && before.tag === after.tag;
      return same ? previous : undefined;
    } catch (err) {
      if (err instanceof ImageReferenceError) return undefined;
      throw err;
    }
  }
}

/**
 * A workload labelled to be skipped: its pod template gets the label too, so the pods its
 * controller creates are skipped as well (the webhook's objectSelector never sees the
 * workload's own labels on a pod). A Job's template cannot change after it is created.
 */
function skipped(request: AdmissionRequest): AdmissionDecision {
  const path = podTemplatePath(request.kind.kind);
  if (!path || (request.kind.kind === "Job" && request.operation === "UPDATE")) return { allowed: true };
  let template: unknown = request.object;
  for (const key of path) template = isMapping(template) ? template[key] : undefined;
  if (!isMapping(template)) return { allowed: true };
  const pointer = `/${path.join("/")}/metadata`;
  const key = SKIP_LABEL.replace(/~/g, "~0").replace(/\//g, "~1");
  let operation: PatchOperation;
  if (!isMapping(template.metadata)) operation = { op: "add", path: pointer, value: { labels: { [SKIP_LABEL]: SKIP_VALUE } } };
  else if (!isMapping(template.metadata.labels)) operation = { op: "add", path: `${pointer}/labels`, value: { [SKIP_LABEL]: SKIP_VALUE } };
  else if (template.metadata.labels[SKIP_LABEL] !== SKIP_VALUE) operation = { op: "add", path: `${pointer}/labels/${key}`, value: SKIP_VALUE };
  else return { allowed: true };
  return { allowed: true, patch: [operation] };
}

/**
 * The containers an operation may change, each with its image before an UPDATE. A CREATE
 * may change any. An UPDATE may not change a Job's pod template, nor a running pod's
 * containers: on a pod's `ephemeralcontainers` subresource only the ephemeral containers
 * being added are new.
 */
function mutableContainers(request: AdmissionRequest): MutableContainer[] | undefined {
  const kind = request.kind.kind;
  const containers = containersOf(kind, request.object);
  if (!containers || request.operation === "CREATE") return containers;
  if (kind === "Job") return [];
  const previous = new Map((containersOf(kind, request.oldObject ?? {}) ?? []).map((c) => [`${c.list}/${String(c.container.name)}`, c.container.image]));
  if (kind === "Pod") {
    if (request.subResource !== "ephemeralcontainers") return [];
    return containers.filter((c) => c.list === "ephemeralContainers" && !previous.has(`${c.list}/${String(c.container.name)}`));
  }
  return containers.map((c) => {
    const image = previous.get(`${c.list}/${String(c.container.name)}`);
    return typeof image === "string" ? { ...c, previousImage: image } : c;
  });
}

function matcher(globs: readonly string[]): (value: string) => boolean {
  if (globs.length === 0) return () => false;
  return picomatch([...globs], { dot: true });
}
