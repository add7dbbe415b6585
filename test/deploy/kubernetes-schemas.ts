import { dirname, join } from "node:path";

/**
 * Kubernetes' OpenAPI schemas as kubernetes-models 4.3.1 ships them (generated from Kubernetes
 * 1.27's OpenAPI: the oldest release at or above 1.26 the package has), checked with its ajv
 * validator, plus the API server's strict field validation (kubectl's default since 1.25): a
 * field the schema does not name is an error. The schemas leave `additionalProperties` open;
 * berth closes every object schema that lists its properties, as the API server does.
 */

interface Validation {
  register(id: string, schema: Record<string, unknown>): void;
  validate(id: string, data: unknown): void;
}
// kubernetes-models' schema modules call this module's register, read at call time.
const validation = require("@kubernetes-models/validate") as Validation;
const register = validation.register;
validation.register = (id, schema) => register(id, closed(schema));

function closed(schema: Record<string, unknown>): Record<string, unknown> {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (typeof node !== "object" || node === null) return node;
    const copy = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, key === "properties" ? Object.fromEntries(Object.entries(value as object).map(([name, property]) => [name, walk(property)])) : walk(value)]));
    if (copy.properties !== undefined && copy.additionalProperties === undefined && copy["x-kubernetes-preserve-unknown-fields"] !== true) copy.additionalProperties = false;
    return copy;
  };
  return walk(schema) as Record<string, unknown>;
}

/** The schema of each `apiVersion kind` berth's manifests use: the model module and its definition id. */
const SCHEMAS: Record<string, [string, string]> = {
  "v1 Namespace": ["IoK8sApiCoreV1Namespace", "io.k8s.api.core.v1.Namespace"],
  "v1 ConfigMap": ["IoK8sApiCoreV1ConfigMap", "io.k8s.api.core.v1.ConfigMap"],
  "v1 Secret": ["IoK8sApiCoreV1Secret", "io.k8s.api.core.v1.Secret"],
  "v1 Service": ["IoK8sApiCoreV1Service", "io.k8s.api.core.v1.Service"],
  "v1 PersistentVolumeClaim": ["IoK8sApiCoreV1PersistentVolumeClaim", "io.k8s.api.core.v1.PersistentVolumeClaim"],
  "apps/v1 DaemonSet": ["IoK8sApiAppsV1DaemonSet", "io.k8s.api.apps.v1.DaemonSet"],
  "apps/v1 Deployment": ["IoK8sApiAppsV1Deployment", "io.k8s.api.apps.v1.Deployment"],
  "policy/v1 PodDisruptionBudget": ["IoK8sApiPolicyV1PodDisruptionBudget", "io.k8s.api.policy.v1.PodDisruptionBudget"],
  "networking.k8s.io/v1 NetworkPolicy": ["IoK8sApiNetworkingV1NetworkPolicy", "io.k8s.api.networking.v1.NetworkPolicy"],
  "admissionregistration.k8s.io/v1 MutatingWebhookConfiguration": ["IoK8sApiAdmissionregistrationV1MutatingWebhookConfiguration", "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration"],
};

/** True when the package has the schema of this object's apiVersion and kind. */
export function hasSchema(object: { apiVersion?: unknown; kind?: unknown }): boolean {
  return Object.hasOwn(SCHEMAS, `${String(object.apiVersion)} ${String(object.kind)}`);
}

/** Validates an object against its Kubernetes schema; throws ajv's ValidationError naming every problem. */
export function validateObject(object: { apiVersion?: unknown; kind?: unknown }): void {
  const entry = SCHEMAS[`${String(object.apiVersion)} ${String(object.kind)}`];
  if (!entry) throw new Error(`no schema for ${String(object.apiVersion)} ${String(object.kind)}`);
  const [module, id] = entry;
  // The package's exports map hides _schemas/: load the file by its path.
  const schemas = require(join(dirname(require.resolve("kubernetes-models")), "_schemas", `${module}.js`)) as { addSchema(): void };
  schemas.addSchema();
  validation.validate(id, object);
}
