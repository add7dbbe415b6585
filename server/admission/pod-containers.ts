/** Where each kind berth mutates keeps its pod spec. */
const POD_SPEC_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: ["spec"],
  PodTemplate: ["template", "spec"],
  Deployment: ["spec", "template", "spec"],
  StatefulSet: ["spec", "template", "spec"],
  DaemonSet: ["spec", "template", "spec"],
  ReplicaSet: ["spec", "template", "spec"],
  ReplicationController: ["spec", "template", "spec"],
  Job: ["spec", "template", "spec"],
  CronJob: ["spec", "jobTemplate", "spec", "template", "spec"],
};

const CONTAINER_LISTS = ["initContainers", "containers", "ephemeralContainers"] as const;

export const MUTATED_KINDS: readonly string[] = Object.keys(POD_SPEC_PATHS);

/** An object whose pod spec has the wrong shape: no API server sends one. */
export class MalformedObjectError extends Error {}

export interface ContainerLocation {
  /** JSON pointer to the container within the object: `/spec/template/spec/containers/0`. */
  pointer: string;
  list: (typeof CONTAINER_LISTS)[number];
  container: Record<string, unknown>;
}

/**
 * The pod spec of an object of `kind`: undefined for a kind that holds none, null when the
 * object has none (the API server's validation, which runs after admission, rejects that).
 */
export function podSpecOf(kind: string, object: unknown): Record<string, unknown> | null | undefined {
  const path = POD_SPEC_PATHS[kind];
  if (!path) return undefined;
  let spec: unknown = object;
  for (const [depth, key] of path.entries()) {
    if (!isMapping(spec)) throw new MalformedObjectError(`${["request.object", ...path.slice(0, depth)].join(".")} is missing or not an object`);
    spec = spec[key];
    if (spec === undefined || spec === null) return null;
  }
  if (!isMapping(spec)) throw new MalformedObjectError(`request.object.${path.join(".")} is not an object`);
  return spec;
}

/**
 * Every container, init container and ephemeral container of an object of `kind`, or
 * undefined for a kind that holds no pod spec. A missing spec yields none.
 */
export function containersOf(kind: string, object: unknown): ContainerLocation[] | undefined {
  const spec = podSpecOf(kind, object);
  if (spec === undefined) return undefined;
  if (spec === null) return [];
  const path = POD_SPEC_PATHS[kind];
  const found: ContainerLocation[] = [];
  for (const list of CONTAINER_LISTS) {
    const containers = spec[list];
    if (containers === undefined || containers === null) continue;
    if (!Array.isArray(containers)) throw new MalformedObjectError(`request.object.${[...path, list].join(".")} is not a list`);
    containers.forEach((container: unknown, index) => {
      if (!isMapping(container)) throw new MalformedObjectError(`request.object.${[...path, list].join(".")}[${index}] is not an object`);
      found.push({ pointer: `/${[...path, list, index].join("/")}`, list, container });
    });
  }
  return found;
}

/** Where a workload's pod template is (`["spec", "template"]`); undefined for a Pod and kinds without one. */
export function podTemplatePath(kind: string): readonly string[] | undefined {
  const path = POD_SPEC_PATHS[kind];
  return path && kind !== "Pod" ? path.slice(0, -1) : undefined;
}

/** The object's `metadata.labels`, or an empty record. */
export function labelsOf(object: unknown): Record<string, unknown> {
  const metadata = isMapping(object) ? object.metadata : undefined;
  const labels = isMapping(metadata) ? metadata.labels : undefined;
  return isMapping(labels) ? labels : {};
}

/** The kind of the object's controller (`metadata.ownerReferences[]` with `controller: true`), if it has one. */
export function controllerKindOf(object: unknown): string | undefined {
  const metadata = isMapping(object) ? object.metadata : undefined;
  const owners = isMapping(metadata) ? metadata.ownerReferences : undefined;
  if (!Array.isArray(owners)) return undefined;
  const controller = owners.find((owner: unknown) => isMapping(owner) && owner.controller === true) as Record<string, unknown> | undefined;
  return controller === undefined ? undefined : String(controller.kind);
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
