import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { parseAllDocuments } from "yaml";
import { parseConfig } from "../../config/load.js";
import type { BerthConfig } from "../../config/schema.js";
import { parseDuration } from "../../config/duration.js";

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
  MutatingWebhookConfiguration: "admissionregistration.k8s.io/v1",
  Issuer: "cert-manager.io/v1",
  Certificate: "cert-manager.io/v1",
  Kustomization: "kustomize.config.k8s.io/v1beta1",
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

async function kubernetesObjects(): Promise<Doc[]> {
  const files = await filesUnder(join(DEPLOY, "kubernetes"), /\.ya?ml$/);
  return (await Promise.all(files.map(documents))).flat();
}

const one = (objects: Doc[], kind: string, name?: string): Doc => {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  assert.equal(found.length, 1, `one ${kind}${name ? ` ${name}` : ""}`);
  return found[0];
};

const portOf = (listen: string) => Number(listen.slice(listen.lastIndexOf(":") + 1));

async function configMapConfig(objects: Doc[]): Promise<BerthConfig> {
  return parseConfig(documentOf(one(objects, "ConfigMap", "berth-config").data["berth.yaml"]), "configmap.yaml berth.yaml");
}

function documentOf(yamlText: string): unknown {
  const [doc] = parseAllDocuments(yamlText) as unknown as { toJS(): unknown; errors: unknown[] }[];
  assert.deepEqual(doc.errors, []);
  return doc.toJS();
}

describe("deploy/: Kubernetes manifests, node snippets and compose config", () => {
  it("parses every YAML file, each document with a known kind and its apiVersion", async () => {
    const files = await filesUnder(DEPLOY, /\.ya?ml$/);
    assert.ok(files.length >= 9, `found ${files.length} YAML files`);
    for (const file of files.filter((f) => !f.includes(`${join("deploy", "compose")}`))) {
      for (const doc of await documents(file)) {
        assert.ok(doc.kind in API_VERSIONS, `${relative(ROOT, file)}: unexpected kind ${doc.kind}`);
        assert.equal(doc.apiVersion, API_VERSIONS[doc.kind], `${relative(ROOT, file)}: ${doc.kind}`);
        if (doc.kind !== "Kustomization" && doc.kind !== "CredentialProviderConfig") assert.ok(doc.metadata?.name, `${relative(ROOT, file)}: ${doc.kind} has a name`);
      }
    }
  });

  it("puts every namespaced object in berth's namespace, and the kustomization names files that exist", async () => {
    const objects = await kubernetesObjects();
    for (const object of objects.filter((o) => !["Namespace", "MutatingWebhookConfiguration", "Kustomization"].includes(o.kind))) {
      assert.equal(object.metadata.namespace, "berth", `${object.kind} ${object.metadata.name}`);
    }
    const kustomization = one(objects, "Kustomization");
    const listed = await readdir(join(DEPLOY, "kubernetes"));
    for (const resource of kustomization.resources as string[]) assert.ok(listed.includes(resource), `${resource} exists`);
    assert.ok(kustomization.images.some((i: Doc) => i.name === "berth"), "the kustomization sets berth's image");
  });

  it("holds a berth config in the ConfigMap that berth's own schema accepts, with the webhook on its TLS listener", async () => {
    const config = await configMapConfig(await kubernetesObjects());
    assert.ok(config.admission, "the admission webhook is on");
    assert.equal(config.admission.registry, "localhost:5000");
    assert.equal(config.admission.failurePolicy, "Ignore");
    assert.ok(config.admission.listen && config.admission.tlsCertFile && config.admission.tlsKeyFile);
    assert.ok(config.admission.excludeNamespaces.includes("kube-system") && config.admission.excludeNamespaces.includes("berth"));
    assert.ok(config.upstreams.some((u) => u.host === "docker.io"));
  });

  it("registers the webhook at /admission of a Service that reaches berth's webhook listener, with failurePolicy Ignore", async () => {
    const objects = await kubernetesObjects();
    const config = await configMapConfig(objects);
    const webhookConfig = one(objects, "MutatingWebhookConfiguration");
    assert.equal(webhookConfig.webhooks.length, 1);
    const [webhook] = webhookConfig.webhooks;
    assert.equal(webhook.clientConfig.service.path, "/admission");
    assert.equal(webhook.failurePolicy, "Ignore");
    assert.deepEqual(webhook.admissionReviewVersions, ["v1"]);
    assert.equal(webhook.sideEffects, "None");
    assert.ok(webhook.name.split(".").length >= 3, "a webhook name is fully qualified");
    assert.ok(webhook.timeoutSeconds * 1000 > config.admission!.resolveTimeout, "berth gives up on a tag before the API server gives up on berth");
    const excluded = webhook.namespaceSelector.matchExpressions.find((e: Doc) => e.key === "kubernetes.io/metadata.name");
    assert.equal(excluded.operator, "NotIn");
    assert.ok(excluded.values.includes("kube-system") && excluded.values.includes("berth"));
    const resources = webhook.rules.flatMap((r: Doc) => r.resources);
    for (const resource of ["pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs"]) assert.ok(resources.includes(resource), resource);

    const service = one(objects, "Service", webhook.clientConfig.service.name);
    assert.equal(service.metadata.namespace, webhook.clientConfig.service.namespace);
    const servicePort = service.spec.ports.find((p: Doc) => p.port === webhook.clientConfig.service.port);
    assert.ok(servicePort, "the Service has the webhook's port");
    for (const workload of objects.filter((o) => o.kind === "DaemonSet" || o.kind === "Deployment")) {
      const container = workload.spec.template.spec.containers.find((c: Doc) => c.name === "berth");
      const named = container.ports.find((p: Doc) => p.name === servicePort.targetPort);
      assert.equal(named?.containerPort, portOf(config.admission!.listen!), `${workload.kind}: the Service's target is admission.listen's port`);
      assert.deepEqual(service.spec.selector, workload.spec.template.metadata.labels, `${workload.kind}: the Service selects its pods`);
    }
  });

  it("runs berth as a DaemonSet on hostPort 5000, and as a Deployment behind a Service, each with config, TLS, probes and a grace period", async () => {
    const objects = await kubernetesObjects();
    const config = await configMapConfig(objects);
    for (const kind of ["DaemonSet", "Deployment"]) {
      const workload = one(objects, kind, "berth");
      const pod = workload.spec.template.spec;
      const container = pod.containers.find((c: Doc) => c.name === "berth");
      const registry = container.ports.find((p: Doc) => p.name === "registry");
      assert.equal(registry.containerPort, portOf(config.listen));
      if (kind === "DaemonSet") assert.equal(registry.hostPort, 5000);
      assert.equal(container.readinessProbe.httpGet.path, "/readyz");
      assert.equal(container.livenessProbe.httpGet.path, "/healthz");
      const configArg = container.args[container.args.indexOf("--config") + 1];
      const mounts = new Map<string, string>(container.volumeMounts.map((m: Doc) => [m.name, m.mountPath]));
      const volumes = new Map<string, Doc>(pod.volumes.map((v: Doc) => [v.name, v]));
      const configMount = [...mounts].find(([, path]) => configArg.startsWith(`${path}/`));
      assert.equal(volumes.get(configMount![0])?.configMap?.name, "berth-config", `${kind}: --config is in the mounted ConfigMap`);
      const tlsMount = [...mounts].find(([, path]) => config.admission!.tlsCertFile!.startsWith(`${path}/`));
      assert.equal(volumes.get(tlsMount![0])?.secret?.secretName, "berth-webhook-tls");
      assert.ok([...mounts.values()].includes(config.storage.root), `${kind}: storage.root is a volume`);
      const preStop = Number(container.lifecycle.preStop.exec.command.at(-1));
      assert.ok(pod.terminationGracePeriodSeconds * 1000 > preStop * 1000 + config.shutdown.gracePeriod, `${kind}: the grace period covers preStop and berth's shutdown`);
    }
    const registryService = one(objects, "Service", "berth-registry");
    assert.equal(registryService.spec.ports[0].port, 5000);
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
