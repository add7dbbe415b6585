import { ImageReference, ImageReferenceError } from "../reference/image-reference.js";

export const PULL_POLICIES = ["Always", "IfNotPresent", "Never"] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];

export interface PullPolicyDecision {
  policy: PullPolicy;
  /** False when Kubernetes chose it because `imagePullPolicy` was omitted. */
  explicit: boolean;
  reason: string;
}

export function isPullPolicy(value: unknown): value is PullPolicy {
  return typeof value === "string" && (PULL_POLICIES as readonly string[]).includes(value);
}

const EXPLICIT_REASONS: Record<PullPolicy, string> = {
  Always: "set explicitly: the kubelet asks the registry for the tag's digest at every container start, and pulls when it changed",
  IfNotPresent: "set explicitly: the kubelet pulls only when the node does not have the image",
  Never: "set explicitly: the kubelet never pulls; the image must already be on the node",
};

const NOT_RECOMPUTED = "it is set once, when the pod is created, and not recomputed when the tag moves";

/**
 * The pull policy a container runs with (docs/design.md §3), as the Kubernetes API server defaults
 * it: an omitted policy becomes `Always` for `:latest` or no tag (a tag with a digest
 * counts as its tag), and `IfNotPresent` for any other tag, for a digest alone, and for a
 * reference it cannot parse.
 */
export function pullPolicyFor(image: string, explicit?: PullPolicy): PullPolicyDecision {
  if (explicit !== undefined) return { policy: explicit, explicit: true, reason: EXPLICIT_REASONS[explicit] };
  let reference: ImageReference;
  try {
    reference = ImageReference.parse(image);
  } catch (err) {
    if (!(err instanceof ImageReferenceError)) throw err;
    return { policy: "IfNotPresent", explicit: false, reason: `omitted, and Kubernetes defaults an unparseable image to IfNotPresent (${err.message}; the pull will fail)` };
  }
  const defaulted = (policy: PullPolicy, why: string): PullPolicyDecision => ({ policy, explicit: false, reason: `omitted, and ${why}: Kubernetes defaults it to ${policy}; ${NOT_RECOMPUTED}` });
  if (reference.tag === undefined && reference.digest === undefined) return defaulted("Always", `${image} names no tag, which means :latest`);
  if (reference.tag === "latest") return defaulted("Always", `the tag is :latest`);
  if (reference.tag === undefined) return defaulted("IfNotPresent", `the image is pinned by digest, with no tag`);
  return defaulted("IfNotPresent", `the tag is :${reference.tag}, not :latest`);
}
