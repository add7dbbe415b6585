import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { parseAllDocuments } from "yaml";
import { parseConfig } from "../../config/load.js";
import type { BerthConfig } from "../../config/schema.js";
import { parseDuration } from "../../config/duration.js";
import { MUTATED_KINDS } from "../../server/admission/pod-containers.js";
import { runCommand } from "../support/command.js";
import { makeTempDir } from "../support/temp-dir.js";
import { hasSchema, validateObject } from "./kubernetes-schemas.js";
import { podSecurityViolations, type Level } from "./pod-security.js";

/** The repository root; this module runs from dist/test/deploy/. */
const ROOT = resolve(__dirname, "../../..");
const DEPLOY = join(ROOT, "deploy");

/** The apiVersion each kind under deploy/ must have. */
const API_VERSIONS: Record<string, string> = {
  Namespace: "v1",
  ConfigMap: "v1",
  Service: "v1",
  PersistentVolumeClaim: "v1",
  DaemonSet: "apps/v1",
  Deployment: "apps/v1",
  NetworkPolicy: "networking.k8s.io/v1",
  PodDisruptionBudget: "policy/v1",
  MutatingWebhookConfiguration: "admissionregistration.k8s.io/v1",
  Issuer: "cert-manager.io/v1",
  Certificate: "cert-manager.io/v1",
  Kustomization: "kustomize.config.k8s.io/v1beta1",
  Component: "kustomize.config.k8s.io/v1alpha1",
  CredentialProviderConfig: "kubelet.config.k8s.io/v1",
};

type Doc = Record<string, any>;

async function filesUnder(dir: string, pattern: RegExp): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && pattern.test(e.name)).map((e) => join(e.parentPath, e.name)).sort();
}

async function documents(file: string): Promise<Doc[]> {
  const parsed = parseAllDocuments(await readFile(file, "utf8"));
  const docs = Array.isArray(parsed) ? parsed : [parsed];
  for (const doc of docs) assert.deepEqual(doc.errors, [], `${relative(ROOT, file)} is valid YAML`);
  return docs.map((doc) => doc.toJS() as Doc).filter((doc) => doc !== null);
}

/** A kustomize patch file (a JSON6902 operation list), not an object. */
const isPatch = (file: string) => file.endsWith(".patch.yaml");

/** Every object under deploy/kubernetes, the components' included (their patches are not objects). */
async function kubernetesObjects(): Promise<Doc[]> {
  const files = (await filesUnder(join(DEPLOY, "kubernetes"), /\.ya?ml$/)).filter((f) => !isPatch(f));
  return (await Promise.all(files.map(documents))).flat();
}

interface PatchOperation {
  op: "add" | "replace";
  path: string;
  value: unknown;
}

/** Applies a JSON6902 patch (add, with `-` or an index into arrays, and replace) as kustomize does, refusing a path that is not there. */
function applyJsonPatch(object: Doc, operations: PatchOperation[]): Doc {
  const patched = structuredClone(object);
  for (const { op, path, value } of operations) {
    assert.ok(op === "add" || op === "replace", `unexpected op ${op}`);
    const segments = path.split("/").slice(1).map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
    const last = segments.pop()!;
    let parent: any = patched;
    for (const segment of segments) {
      parent = parent?.[segment];
      assert.ok(parent !== null && typeof parent === "object", `${path}: no ${segment}`);
    }
    if (Array.isArray(parent)) {
      const index = last === "-" ? parent.length : Number(last);
      assert.ok(Number.isInteger(index) && index <= parent.length, `${path}: no index ${last}`);
      if (op === "add") parent.splice(index, 0, value);
      else parent[index] = value;
    } else {
      if (op === "replace") assert.ok(last in parent, `${path}: replace of a missing member`);
      parent[last] = value;
    }
  }
  return patched;
}

/**
 * The objects `kubectl apply -k` makes with `components: [NAME]` added to the kustomization:
 * its resources, and the component's resources, with the component's patches applied to their targets.
 */
async function withComponent(name: string): Promise<Doc[]> {
  const dir = join(DEPLOY, "kubernetes");
  const [kustomization] = await documents(join(dir, "kustomization.yaml"));
  const [component] = await documents(join(dir, name, "kustomization.yaml"));
  const objects = [
    ...(await Promise.all((kustomization.resources as string[]).map((r) => documents(join(dir, r))))).flat(),
    ...(await Promise.all((component.resources as string[]).map((r) => documents(join(dir, name, r))))).flat(),
  ];
  for (const patch of component.patches as { path: string; target: { kind: string; name: string } }[]) {
    const operations = (await documents(join(dir, name, patch.path)))[0] as unknown as PatchOperation[];
    const targets = objects.filter((o) => o.kind === patch.target.kind && o.metadata?.name === patch.target.name);
    assert.equal(targets.length, 1, `${name}/${patch.path} patches one ${patch.target.kind} ${patch.target.name}`);
    objects[objects.indexOf(targets[0])] = applyJsonPatch(targets[0], operations);
  }
  return objects;
}

const one = (objects: Doc[], kind: string, name?: string): Doc => {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  assert.equal(found.length, 1, `one ${kind}${name ? ` ${name}` : ""}`);
  return found[0];
};

const portOf = (listen: string) => Number(listen.slice(listen.lastIndexOf(":") + 1));

function configDocument(objects: Doc[], configMap = "berth-config", key = "berth.yaml"): Record<string, unknown> {
  const [doc] = parseAllDocuments(one(objects, "ConfigMap", configMap).data[key]) as unknown as { toJS(): Record<string, unknown>; errors: unknown[] }[];
  assert.deepEqual(doc.errors, []);
  return doc.toJS();
}

/**
 * The config a workload's berth container runs with: the file `--config` names in the ConfigMap
 * mounted there, with `serve`'s flags applied as server/main.ts applies them.
 */
function containerConfig(objects: Doc[], workload: Doc): BerthConfig {
  const container = berthContainer(workload);
  const args = container.args as string[];
  assert.equal(args[0], "serve");
  const flag = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const file = flag("--config")!;
  const mount = (container.volumeMounts as Doc[]).find((m) => file.startsWith(`${m.mountPath}/`));
  const configMap = (workload.spec.template.spec.volumes as Doc[]).find((v) => v.name === mount?.name)?.configMap?.name;
  assert.ok(configMap, `${workload.kind} ${workload.metadata.name}: --config ${file} is in a mounted ConfigMap`);
  const document = configDocument(objects, configMap, file.slice(mount!.mountPath.length + 1));
  if (flag("--listen")) document.listen = flag("--listen");
  if (args.includes("--no-admission")) delete document.admission;
  return parseConfig(document, `${configMap} ${file} with ${args.slice(1).join(" ")}`);
}

const berthContainer = (workload: Doc): Doc => workload.spec.template.spec.containers.find((c: Doc) => c.name === "berth");

/** The kinds config/README.md says the webhook mutates: "of a Pod, or of the pod template of a Deployment, ..., Job or CronJob". */
async function documentedKinds(): Promise<string[]> {
  const readme = (await readFile(join(ROOT, "config", "README.md"), "utf8")).replace(/\s+/g, " ");
  const sentence = /of a Pod, or of the pod template of an? ([^,]+(?:, [^,]+)*?) or ([A-Za-z]+),/.exec(readme);
  assert.ok(sentence, "config/README.md lists the kinds the webhook mutates");
  return ["Pod", ...sentence[1].split(", "), sentence[2]];
}

/** The resource name the API server uses for a kind (all of these are regular plurals). */
const resourceOf = (kind: string) => `${kind.toLowerCase()}s`;

describe("deploy/: Kubernetes manifests, node snippets and compose config", () => {
  it("parses every YAML file, each document with a known kind and its apiVersion", async () => {
    const files = await filesUnder(DEPLOY, /\.ya?ml$/);
    assert.ok(files.length >= 10, `found ${files.length} YAML files`);
    for (const file of files.filter((f) => !f.includes(`${join("deploy", "compose")}`) && !isPatch(f))) {
      for (const doc of await documents(file)) {
        assert.ok(doc.kind in API_VERSIONS, `${relative(ROOT, file)}: unexpected kind ${doc.kind}`);
        assert.equal(doc.apiVersion, API_VERSIONS[doc.kind], `${relative(ROOT, file)}: ${doc.kind}`);
        if (!["Kustomization", "Component", "CredentialProviderConfig"].includes(doc.kind)) assert.ok(doc.metadata?.name, `${relative(ROOT, file)}: ${doc.kind} has a name`);
      }
    }
  });

  it("validates every Kubernetes object against the Kubernetes OpenAPI schemas, refusing unknown fields as the API server does", async () => {
    const objects = (await kubernetesObjects()).filter(hasSchema);
    assert.deepEqual([...new Set(objects.map((o) => o.kind))].sort(), ["ConfigMap", "DaemonSet", "Deployment", "MutatingWebhookConfiguration", "Namespace", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "Service"]);
    for (const object of objects) assert.doesNotThrow(() => validateObject(object), `${object.kind} ${object.metadata.name}`);
    // The check is not vacuous: what the API server would refuse, it refuses.
    const daemonSet = structuredClone(one(objects, "DaemonSet"));
    daemonSet.spec.template.spec.hostNetWork = true;
    assert.throws(() => validateObject(daemonSet), /must NOT have additional properties/);
    const policy = structuredClone(one(objects, "NetworkPolicy", "berth-webhook"));
    policy.spec.ingress[0].from[0].ipBlock.cidr = 10;
    assert.throws(() => validateObject(policy), /cidr must be string/);
  });

  it("puts every namespaced object in berth's namespace; the kustomization and its components name files that exist", async () => {
    const objects = await kubernetesObjects();
    for (const object of objects.filter((o) => !["Namespace", "MutatingWebhookConfiguration", "Kustomization", "Component"].includes(o.kind))) {
      assert.equal(object.metadata.namespace, "berth", `${object.kind} ${object.metadata.name}`);
    }
    const kustomization = one(objects, "Kustomization");
    const listed = await readdir(join(DEPLOY, "kubernetes"));
    for (const resource of kustomization.resources as string[]) assert.ok(listed.includes(resource), `${resource} exists`);
    assert.ok(!(kustomization.resources as string[]).some((r) => r.includes("cert-manager")), "cert-manager's kinds are applied only by its component");
    for (const name of ["cert-manager", "tiers"]) {
      const [component] = await documents(join(DEPLOY, "kubernetes", name, "kustomization.yaml"));
      assert.equal(component.kind, "Component");
      const files = await readdir(join(DEPLOY, "kubernetes", name));
      for (const resource of component.resources as string[]) assert.ok(files.includes(resource), `${name}/${resource} exists`);
      for (const patch of (component.patches ?? []) as Doc[]) assert.ok(files.includes(patch.path) && isPatch(patch.path), `${name}/${patch.path} exists`);
    }
    assert.ok(kustomization.images.some((i: Doc) => i.name === "berth"), "the kustomization sets berth's image");
  });

  it("holds a berth config in the ConfigMap that berth's own schema accepts: the registry on loopback, the webhook on its TLS listener", async () => {
    const objects = await kubernetesObjects();
    const config = parseConfig(configDocument(objects), "configmap.yaml berth.yaml");
    assert.equal(config.listen, "127.0.0.1:5000", "on the DaemonSet's host network: the node's loopback");
    assert.ok(config.admission, "the admission webhook is on");
    assert.equal(config.admission.registry, "localhost:5000");
    assert.equal(config.admission.failurePolicy, "Ignore");
    assert.ok(config.admission.listen && config.admission.tlsCertFile && config.admission.tlsKeyFile);
    assert.ok(config.admission.excludeNamespaces.includes("kube-system") && config.admission.excludeNamespaces.includes("berth"));
    assert.ok(config.upstreams.some((u) => u.host === "docker.io"));
  });

  it("registers the webhooks at /admission of a Service that reaches the webhook Deployment's listener, with failurePolicy Ignore", async () => {
    const objects = await kubernetesObjects();
    const webhookDeployment = one(objects, "Deployment", "berth-webhook");
    const config = containerConfig(objects, webhookDeployment);
    const webhookConfig = one(objects, "MutatingWebhookConfiguration");
    assert.deepEqual(webhookConfig.webhooks.map((w: Doc) => w.name), ["pods.images.berth.dev", "workloads.images.berth.dev"]);
    for (const webhook of webhookConfig.webhooks as Doc[]) {
      assert.equal(webhook.clientConfig.service.path, "/admission");
      assert.equal(webhook.failurePolicy, "Ignore");
      assert.deepEqual(webhook.admissionReviewVersions, ["v1"]);
      assert.equal(webhook.sideEffects, "None");
      assert.ok(webhook.timeoutSeconds * 1000 > config.admission!.resolveTimeout, "berth gives up on a tag before the API server gives up on berth");
      const excluded = webhook.namespaceSelector.matchExpressions.find((e: Doc) => e.key === "kubernetes.io/metadata.name");
      assert.equal(excluded.operator, "NotIn");
      assert.ok(excluded.values.includes("kube-system") && excluded.values.includes("berth"));
      const service = one(objects, "Service", webhook.clientConfig.service.name);
      assert.equal(service.metadata.namespace, webhook.clientConfig.service.namespace);
      const servicePort = service.spec.ports.find((p: Doc) => p.port === webhook.clientConfig.service.port);
      assert.ok(servicePort, "the Service has the webhook's port");
      const named = berthContainer(webhookDeployment).ports.find((p: Doc) => p.name === servicePort.targetPort);
      assert.equal(named?.containerPort, portOf(config.admission!.listen!), "the Service's target is admission.listen's port");
      assert.deepEqual(service.spec.selector, webhookDeployment.spec.template.metadata.labels, "the Service selects the webhook's pods");
    }
    const [pods, workloads] = webhookConfig.webhooks as Doc[];
    assert.deepEqual(pods.objectSelector.matchExpressions, [{ key: "berth.dev/admission", operator: "NotIn", values: ["skip"] }], "a pod labelled skip is not sent");
    assert.equal(workloads.objectSelector, undefined, "a workload labelled skip is sent, so berth can carry the label into its template");
    assert.deepEqual(pods.rules.flatMap((r: Doc) => r.resources), ["pods", "pods/ephemeralcontainers"]);
  });

  it("matches with the shipped rules every kind config/README.md says the webhook mutates, and no other", async () => {
    const objects = await kubernetesObjects();
    const kinds = await documentedKinds();
    assert.ok(kinds.includes("ReplicationController") && kinds.includes("CronJob"), kinds.join(", "));
    const rules = one(objects, "MutatingWebhookConfiguration").webhooks.flatMap((w: Doc) => w.rules as Doc[]);
    const matched = new Set<string>(rules.flatMap((r: Doc) => (r.resources as string[]).filter((resource) => !resource.includes("/"))));
    for (const kind of kinds) {
      const rule = rules.find((r: Doc) => (r.resources as string[]).includes(resourceOf(kind)));
      assert.ok(rule, `${kind} (${resourceOf(kind)}) is matched by a rule`);
      assert.ok(rule.operations.includes("CREATE"), `${kind}: CREATE`);
      if (kind !== "Pod") assert.ok(rule.operations.includes("UPDATE"), `${kind}: UPDATE`);
      assert.ok(MUTATED_KINDS.includes(kind), `berth knows where a ${kind} keeps its pod spec`);
    }
    assert.deepEqual([...matched].sort(), kinds.map(resourceOf).sort(), "every resource the rules match is documented");
  });

  it("runs the registry tier on each node's loopback (hostNetwork) and the webhook and the Deployment variant on the pod network, each with its config, probes and grace period", async () => {
    const objects = await kubernetesObjects();
    const daemonSet = one(objects, "DaemonSet", "berth");
    const pod = daemonSet.spec.template.spec;
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.dnsPolicy, "ClusterFirstWithHostNet");
    const nodeConfig = containerConfig(objects, daemonSet);
    assert.equal(nodeConfig.listen, "127.0.0.1:5000", "the node's loopback only: no pod, no other machine reaches it");
    assert.equal(nodeConfig.admission, undefined, "no webhook listener on the node's network");
    for (const probe of [berthContainer(daemonSet).readinessProbe, berthContainer(daemonSet).livenessProbe]) assert.equal(probe.httpGet.host, "127.0.0.1", "the kubelet probes the node's loopback");

    for (const [kind, name] of [["DaemonSet", "berth"], ["Deployment", "berth"], ["Deployment", "berth-webhook"]] as const) {
      const workload = one(objects, kind, name);
      const spec = workload.spec.template.spec;
      const container = berthContainer(workload);
      const config = containerConfig(objects, workload);
      assert.equal(container.ports.find((p: Doc) => p.name === "registry").containerPort, portOf(config.listen));
      assert.equal(container.readinessProbe.httpGet.path, "/readyz");
      assert.equal(container.livenessProbe.httpGet.path, "/healthz");
      const mounts = new Map<string, string>(container.volumeMounts.map((m: Doc) => [m.name, m.mountPath]));
      const volumes = new Map<string, Doc>(spec.volumes.map((v: Doc) => [v.name, v]));
      const configArg = container.args[container.args.indexOf("--config") + 1];
      const configMount = [...mounts].find(([, path]) => configArg.startsWith(`${path}/`));
      assert.equal(volumes.get(configMount![0])?.configMap?.name, "berth-config", `${kind} ${name}: --config is in the mounted ConfigMap`);
      assert.ok([...mounts.values()].includes(config.storage.root), `${kind} ${name}: storage.root is a volume`);
      if (config.admission) {
        const tlsMount = [...mounts].find(([, path]) => config.admission!.tlsCertFile!.startsWith(`${path}/`));
        assert.equal(volumes.get(tlsMount![0])?.secret?.secretName, "berth-webhook-tls");
      }
      const preStop = Number(container.lifecycle.preStop.exec.command.at(-1));
      assert.ok(spec.terminationGracePeriodSeconds * 1000 > preStop * 1000 + config.shutdown.gracePeriod, `${kind} ${name}: the grace period covers preStop and berth's shutdown`);
    }
    assert.ok(containerConfig(objects, one(objects, "Deployment", "berth-webhook")).admission, "the webhook Deployment serves the webhook");
    assert.equal(containerConfig(objects, one(objects, "Deployment", "berth")).admission, undefined);
    const registryService = one(objects, "Service", "berth-registry");
    assert.equal(registryService.spec.ports[0].port, 5000);
    assert.deepEqual(registryService.spec.selector, one(objects, "Deployment", "berth").spec.template.metadata.labels);
  });

  describe("Pod Security", () => {
    const level = (namespace: Doc, mode: string) => namespace.metadata.labels[`pod-security.kubernetes.io/${mode}`] as Level;

    it("labels berth's namespace: enforce privileged (what the node-local DaemonSet needs), audit and warn restricted", async () => {
      const namespace = one(await kubernetesObjects(), "Namespace", "berth");
      assert.equal(level(namespace, "enforce"), "privileged");
      assert.equal(level(namespace, "audit"), "restricted");
      assert.equal(level(namespace, "warn"), "restricted");
    });

    it("admits every pod under the namespace's enforce level, and every pod but the DaemonSet's at restricted, so applying them warns of nothing else", async () => {
      const objects = await kubernetesObjects();
      const namespace = one(objects, "Namespace", "berth");
      for (const workload of objects.filter((o) => o.kind === "DaemonSet" || o.kind === "Deployment")) {
        const { spec, metadata } = workload.spec.template;
        assert.deepEqual(podSecurityViolations(spec, metadata ?? {}, level(namespace, "enforce")), [], `${workload.kind} ${workload.metadata.name}`);
        for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
          assert.equal(container.securityContext?.seccompProfile?.type ?? spec.securityContext?.seccompProfile?.type, "RuntimeDefault", `${workload.kind} ${workload.metadata.name}: ${container.name}: seccompProfile RuntimeDefault`);
        }
        if (workload.kind === "Deployment") assert.deepEqual(podSecurityViolations(spec, metadata ?? {}, "restricted"), [], `${workload.kind} ${workload.metadata.name} meets restricted`);
      }
    });

    it("lets the DaemonSet break only the controls its node-local cache needs, and names them in the namespace's comment", async () => {
      const objects = await kubernetesObjects();
      const { spec, metadata } = one(objects, "DaemonSet", "berth").spec.template;
      assert.deepEqual(podSecurityViolations(spec, metadata, "baseline"), ["Host Namespaces", "HostPath Volumes", "Host Ports"]);
      assert.deepEqual(podSecurityViolations(spec, metadata, "restricted"), [
        "Host Namespaces",
        "HostPath Volumes",
        "Host Ports",
        "Volume Types (restricted)",
        "Running as Non-root (restricted)",
        "Running as Non-root user (restricted)",
        "Capabilities (restricted)",
      ]);
      const withoutInit = { ...spec, initContainers: [] };
      assert.deepEqual(podSecurityViolations(withoutInit, metadata, "restricted"), ["Host Namespaces", "HostPath Volumes", "Host Ports", "Volume Types (restricted)"], "berth itself runs as restricted asks; only the init container that chowns the hostPath is root");
      const comment = await readFile(join(DEPLOY, "kubernetes", "namespace.yaml"), "utf8");
      for (const need of ["hostNetwork", "hostPath", "root init container", "host port"]) assert.ok(comment.includes(need), `namespace.yaml says why: ${need}`);
    });
  });

  it("admits to the webhook's pods only its port, and to the Deployment variant only the registry port, each from listed addresses", async () => {
    const objects = await kubernetesObjects();
    for (const [policyName, workloadName, port] of [["berth-webhook", "berth-webhook", "webhook"], ["berth-registry", "berth", "registry"]] as const) {
      const policy = one(objects, "NetworkPolicy", policyName);
      const workload = one(objects, "Deployment", workloadName);
      assert.deepEqual(policy.spec.podSelector.matchLabels, workload.spec.template.metadata.labels, `${policyName} selects ${workloadName}'s pods`);
      assert.deepEqual(policy.spec.policyTypes, ["Ingress"]);
      assert.equal(policy.spec.ingress.length, 1);
      const [rule] = policy.spec.ingress;
      assert.deepEqual(rule.ports, [{ port, protocol: "TCP" }]);
      assert.ok(berthContainer(workload).ports.some((p: Doc) => p.name === port));
      assert.ok(rule.from.length > 0 && rule.from.every((peer: Doc) => Object.keys(peer).join() === "ipBlock"), "only address blocks: no pod or namespace selector opens it to pods");
    }
    assert.ok(!objects.some((o) => o.kind === "NetworkPolicy" && o.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === undefined), "no policy selects the hostNetwork DaemonSet's pods, which NetworkPolicy does not govern");
  });

  describe("tiers: node berths behind a cluster berth (components: [tiers])", () => {
    it("makes objects the Kubernetes schemas accept, whose pods stay within the namespace's Pod Security levels, the cluster tier's within restricted", async () => {
      const objects = await withComponent("tiers");
      for (const object of objects.filter(hasSchema)) assert.doesNotThrow(() => validateObject(object), `${object.kind} ${object.metadata.name}`);
      const namespace = one(objects, "Namespace", "berth");
      const enforce = namespace.metadata.labels["pod-security.kubernetes.io/enforce"] as Level;
      for (const workload of objects.filter((o) => o.kind === "DaemonSet" || o.kind === "Deployment")) {
        const { spec, metadata } = workload.spec.template;
        assert.deepEqual(podSecurityViolations(spec, metadata, enforce), [], `${workload.kind} ${workload.metadata.name}`);
        if (workload.kind === "Deployment") assert.deepEqual(podSecurityViolations(spec, metadata, "restricted"), [], `${workload.kind} ${workload.metadata.name} meets restricted`);
      }
      const { spec, metadata } = one(objects, "DaemonSet", "berth").spec.template;
      assert.deepEqual(podSecurityViolations(spec, metadata, "baseline"), ["Host Namespaces", "HostPath Volumes", "Host Ports"], "the parent's credentials add no control the DaemonSet breaks");
    });

    it("points the node tier and the webhook at the cluster tier's Service, as the node account of a Secret they mount, with the cluster tier's hosts and prefixes", async () => {
      const objects = await withComponent("tiers");
      const clusterTier = one(objects, "Deployment", "berth-cluster");
      const service = one(objects, "Service", "berth-cluster");
      assert.deepEqual(service.spec.selector, clusterTier.spec.template.metadata.labels, "the Service selects the cluster tier's pods");
      const cluster = containerConfig(objects, clusterTier);
      const upstreamsOf = (config: BerthConfig) => config.upstreams.map(({ host, prefix }) => `${host} ${prefix}`).sort();

      const daemonSet = one(objects, "DaemonSet", "berth");
      const webhook = one(objects, "Deployment", "berth-webhook");
      for (const workload of [daemonSet, webhook]) {
        const name = `${workload.kind} ${workload.metadata.name}`;
        const config = containerConfig(objects, workload);
        const parent = new URL(config.cluster.parent!);
        assert.equal(parent.hostname, `${service.metadata.name}.${service.metadata.namespace}.svc`, `${name}: the parent is the cluster tier's Service`);
        assert.equal(Number(parent.port), service.spec.ports[0].port, name);
        assert.equal(service.spec.ports[0].targetPort, "registry");
        assert.equal(berthContainer(clusterTier).ports.find((p: Doc) => p.name === "registry").containerPort, portOf(cluster.listen), "the Service reaches the cluster tier's listener");
        assert.deepEqual(upstreamsOf(config), upstreamsOf(cluster), `${name}: the hosts and prefixes the cluster tier mirrors`);
        assert.ok(config.upstreams.every((u) => u.credentials.length === 0) && config.tenants.length === 0, `${name}: single-tenant, no registry credentials`);
        const [credentials] = config.cluster.credentials;
        const mount = berthContainer(workload).volumeMounts.find((m: Doc) => credentials.startsWith(`${m.mountPath}/`));
        const volume = workload.spec.template.spec.volumes.find((v: Doc) => v.name === mount?.name);
        assert.equal(volume?.secret?.secretName, "berth-parent-credentials", `${name}: cluster.credentials is the mounted Secret`);
        assert.ok(volume.secret.items.some((i: Doc) => i.key === ".dockerconfigjson" && credentials === `${mount.mountPath}/${i.path}`), `${name}: the Secret's .dockerconfigjson`);
      }
      const nodeConfig = containerConfig(objects, daemonSet);
      assert.equal(nodeConfig.listen, "127.0.0.1:5000");
      assert.equal(nodeConfig.admission, undefined);
      const webhookConfig = containerConfig(objects, webhook);
      assert.equal(webhookConfig.admission?.registry, `localhost:${portOf(nodeConfig.listen)}`, "the webhook rewrites images to the node tier's loopback");
    });

    it("runs the cluster tier in token mode, only the node account pulling, with a grace period covering preStop and shutdown", async () => {
      const objects = await withComponent("tiers");
      const clusterTier = one(objects, "Deployment", "berth-cluster");
      const config = containerConfig(objects, clusterTier);
      assert.equal(config.auth.mode, "token", "a ClusterIP is reachable from every pod");
      assert.equal(config.cluster.parent, undefined);
      assert.equal(config.admission, undefined);
      assert.deepEqual(config.auth.nodes.map((n) => n.username), ["node"]);
      assert.deepEqual(
        config.auth.policy.map((rule) => ({ roles: rule.roles, repositories: rule.repositories, actions: rule.actions, anonymous: rule.anonymous })),
        [{ roles: ["node"], repositories: ["**"], actions: ["pull"], anonymous: false }],
      );
      const container = berthContainer(clusterTier);
      const preStop = Number(container.lifecycle.preStop.exec.command.at(-1));
      assert.ok(clusterTier.spec.template.spec.terminationGracePeriodSeconds * 1000 > preStop * 1000 + config.shutdown.gracePeriod);
    });

    it("runs the cluster tier as replicas on one bucket coordinated through the shipped Redis, rolled one at a time under a PodDisruptionBudget", async () => {
      const objects = await withComponent("tiers");
      const clusterTier = one(objects, "Deployment", "berth-cluster");
      const config = containerConfig(objects, clusterTier);
      const pod = clusterTier.spec.template;
      const container = berthContainer(clusterTier);
      const volumeOf = (path: string) => {
        const mount = container.volumeMounts.find((m: Doc) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
        return pod.spec.volumes.find((v: Doc) => v.name === mount?.name);
      };
      assert.ok(clusterTier.spec.replicas >= 2);
      assert.deepEqual(clusterTier.spec.strategy, { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } }, "a new replica is ready before an old one stops");
      const budget = one(objects, "PodDisruptionBudget", "berth-cluster");
      assert.deepEqual(budget.spec.selector.matchLabels, pod.metadata.labels);
      assert.equal(budget.spec.maxUnavailable, 1);

      assert.equal(config.storage.driver, "s3", "every byte in the bucket");
      assert.ok(volumeOf(config.storage.root)?.emptyDir, "storage.root holds only this replica's spool");
      assert.equal(config.storage.s3!.credentials.source, "file");
      assert.equal(volumeOf(config.storage.s3!.credentials.file!)?.secret?.secretName, "berth-cluster-bucket");
      const coordination = config.coordination!;
      assert.equal(volumeOf(coordination.internal.secretFile)?.secret?.secretName, "berth-cluster-internal");

      const redisUrl = new URL(coordination.redis.url);
      const redisService = one(objects, "Service", "berth-redis");
      assert.equal(redisUrl.hostname, `${redisService.metadata.name}.${redisService.metadata.namespace}.svc`);
      assert.equal(Number(redisUrl.port), redisService.spec.ports[0].port);
      const redis = one(objects, "Deployment", "berth-redis");
      assert.deepEqual(redisService.spec.selector, redis.spec.template.metadata.labels);
      const redisArgs = redis.spec.template.spec.containers[0].args as string[];
      assert.equal(redisArgs[redisArgs.indexOf("--maxmemory-policy") + 1], "noeviction", "a lease never vanishes under memory pressure");

      const env = new Map<string, Doc>(container.env.map((e: Doc) => [e.name, e]));
      assert.equal(env.get("BERTH_REPLICA_ID")?.valueFrom?.fieldRef?.fieldPath, "metadata.name", "each replica is named by its pod");
      assert.equal(env.get("POD_IP")?.valueFrom?.fieldRef?.fieldPath, "status.podIP");
      const internalPort = container.ports.find((p: Doc) => p.name === "internal").containerPort;
      assert.equal(internalPort, portOf(coordination.internal.listen));
      assert.equal(env.get("BERTH_INTERNAL_URL")?.value, `http://$(POD_IP):${internalPort}`, "the others reach this replica's internal port at its pod IP");
      assert.ok(container.env.findIndex((e: Doc) => e.name === "POD_IP") < container.env.findIndex((e: Doc) => e.name === "BERTH_INTERNAL_URL"), "$(POD_IP) is defined before its use");
    });

    it("opens the cluster tier's internal port and Redis only to the cluster tier's own pods, its registry port to all", async () => {
      const objects = await withComponent("tiers");
      const clusterLabels = one(objects, "Deployment", "berth-cluster").spec.template.metadata.labels;
      const onlyClusterTier = [{ podSelector: { matchLabels: clusterLabels } }];
      const policy = one(objects, "NetworkPolicy", "berth-cluster");
      assert.deepEqual(policy.spec.podSelector.matchLabels, clusterLabels);
      assert.deepEqual(policy.spec.policyTypes, ["Ingress"]);
      const rules = new Map<string, Doc>(policy.spec.ingress.map((rule: Doc) => [rule.ports.map((p: Doc) => p.port).join(), rule]));
      assert.deepEqual([...rules.keys()].sort(), ["internal", "registry"]);
      assert.equal(rules.get("registry")!.from, undefined, "nodes and pods reach the registry (token mode)");
      assert.deepEqual(rules.get("internal")!.from, onlyClusterTier);
      const redisPolicy = one(objects, "NetworkPolicy", "berth-redis");
      assert.deepEqual(redisPolicy.spec.podSelector.matchLabels, one(objects, "Deployment", "berth-redis").spec.template.metadata.labels);
      assert.deepEqual(redisPolicy.spec.ingress, [{ ports: [{ port: "redis", protocol: "TCP" }], from: onlyClusterTier }]);
    });
  });

  it("makes the webhook's certificate without cert-manager: a CA, a serving certificate for the Service, the Secret and the caBundle patch", async (t) => {
    const dir = await makeTempDir("webhook-certificate");
    t.after(() => dir.remove());
    await runCommand("bash", [join(DEPLOY, "kubernetes", "webhook-certificate.sh"), "--days", "30", dir.path]);
    await runCommand("openssl", ["verify", "-CAfile", join(dir.path, "ca.crt"), join(dir.path, "tls.crt")]);
    const certificate = new X509Certificate(await readFile(join(dir.path, "tls.crt")));
    assert.ok(certificate.checkHost("berth-webhook.berth.svc") && certificate.checkHost("berth-webhook.berth.svc.cluster.local"), certificate.subjectAltName);
    assert.ok(certificate.checkPrivateKey(createPrivateKey(await readFile(join(dir.path, "tls.key")))));
    assert.ok(new X509Certificate(await readFile(join(dir.path, "ca.crt"))).ca);
    assert.ok(!(await readdir(dir.path)).includes("ca.key"), "the CA's key is thrown away");

    const [secret] = await documents(join(dir.path, "secret.yaml"));
    validateObject(secret);
    assert.equal(secret.type, "kubernetes.io/tls");
    assert.deepEqual([secret.metadata.name, secret.metadata.namespace], ["berth-webhook-tls", "berth"]);
    assert.equal(Buffer.from(secret.data["tls.crt"], "base64").toString(), await readFile(join(dir.path, "tls.crt"), "utf8"));

    const webhookConfig = one(await kubernetesObjects(), "MutatingWebhookConfiguration");
    const patch = JSON.parse(await readFile(join(dir.path, "cabundle-patch.json"), "utf8")) as { op: string; path: string; value: string }[];
    assert.deepEqual(patch.map((op) => op.path), webhookConfig.webhooks.map((_w: Doc, i: number) => `/webhooks/${i}/clientConfig/caBundle`), "every webhook gets the CA");
    for (const op of patch) assert.equal(Buffer.from(op.value, "base64").toString(), await readFile(join(dir.path, "ca.crt"), "utf8"));
  });

  it("has a kubelet CredentialProviderConfig for berth's registry host", async () => {
    const [config] = await documents(join(DEPLOY, "node", "credential-provider-config.yaml"));
    const [provider] = config.providers;
    assert.equal(provider.name, "berth-credential-provider");
    assert.equal(provider.apiVersion, "credentialprovider.kubelet.k8s.io/v1");
    assert.ok(parseDuration(provider.defaultCacheDuration) !== undefined, "defaultCacheDuration is required");
    assert.ok(provider.matchImages.includes("localhost:5000"));
  });

  it("has containerd hosts.toml and CRI-O registries.conf snippets that parse and name berth over plain HTTP", async () => {
    // smol-toml is an ES module; this test compiles to CommonJS.
    const { parse } = await import("smol-toml");
    const parseToml = (text: string) => JSON.parse(JSON.stringify(parse(text))) as Doc;
    const berthHosts = parseToml(await readFile(join(DEPLOY, "node", "containerd", "berth.hosts.toml"), "utf8"));
    assert.equal(berthHosts.server, "http://localhost:5000");
    assert.deepEqual(berthHosts.host["http://localhost:5000"].capabilities, ["pull", "resolve"]);
    const hubHosts = parseToml(await readFile(join(DEPLOY, "node", "containerd", "docker.io.hosts.toml"), "utf8"));
    assert.equal(hubHosts.server, "https://registry-1.docker.io");
    assert.ok(hubHosts.host["http://localhost:5000"]);
    const crio = parseToml(await readFile(join(DEPLOY, "node", "cri-o", "berth.conf"), "utf8"));
    assert.ok(crio.registry.some((r: Doc) => r.location === "localhost:5000" && r.insecure === true));
    const hub = crio.registry.find((r: Doc) => r.prefix === "docker.io");
    assert.deepEqual(hub.mirror, [{ location: "localhost:5000/docker.io", insecure: true }]);
  });

  it("has a compose config that berth's schema accepts", async () => {
    const [document] = await documents(join(DEPLOY, "compose", "berth.yaml"));
    const config = parseConfig(document, "deploy/compose/berth.yaml");
    assert.ok(config.upstreams.some((u) => u.url === "http://origin:5000" && u.prefix === "origin"));
  });
});
