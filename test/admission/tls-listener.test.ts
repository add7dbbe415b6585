import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import { connect } from "node:tls";
import { after, before, describe, it } from "node:test";
import express from "express";
import pino from "pino";
import { ConfigError, parseConfig } from "../../config/load.js";
import { AdmissionListener } from "../../server/admission/admission-listener.js";
import { createLogger } from "../../server/log.js";
import { startBerth } from "../../server/server.js";
import { startMirror } from "../mirror/mirror-fixture.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { admissionReview, applyPatch, podSpecOf, startDockerHubOrigin, workload, type DockerHubOrigin } from "./admission-fixture.js";
import { clientCertificate, selfSigned } from "./tls-fixture.js";

/** POST over HTTPS trusting only `ca`, presenting `client` (a certificate and key) when given. */
function postHttps(url: string, body: unknown, ca: Buffer, client?: { cert: Buffer; key: Buffer }): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", ca, ...client, headers: { "content-type": "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown> }));
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** The fingerprint of the certificate a new TLS connection to `url` is shown. */
function servedCertificate(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.end();
    });
    socket.on("error", reject);
  });
}

const fingerprint = async (file: string) => new X509Certificate(await readFile(file)).fingerprint256;

describe("admission webhook over its own HTTPS listener", () => {
  let hub: DockerHubOrigin;
  let dir: TempDir;
  let tls: { cert: string; key: string };

  before(async () => {
    hub = await startDockerHubOrigin();
    dir = await makeTempDir("admission-tls");
    tls = await selfSigned(dir.path, "berth-admission");
  });
  after(async () => {
    await hub?.close();
    await dir?.remove();
  });

  it("answers AdmissionReviews over TLS with the configured certificate, and not on the registry's listener", async (t) => {
    const berth = await startMirror([{ host: "docker.io", url: hub.origin.url }], {
      admission: { listen: "127.0.0.1:0", tlsCertFile: tls.cert, tlsKeyFile: tls.key, registry: "localhost:5000" },
    });
    t.after(() => berth.stop());
    assert.match(berth.admissionUrl ?? "", /^https:\/\/127\.0\.0\.1:\d+$/);
    const pod = workload("Pod", [{ name: "web", image: "nginx:1.25" }]);
    const answer = await postHttps(`${berth.admissionUrl}/admission`, admissionReview("Pod", pod, { uid: "tls-1" }), await readFile(tls.cert));
    assert.equal(answer.status, 200);
    const response = answer.json.response as { uid: string; allowed: boolean; patch: string };
    assert.equal(response.uid, "tls-1");
    const patched = applyPatch(pod, JSON.parse(Buffer.from(response.patch, "base64").toString("utf8")));
    assert.equal(podSpecOf(patched, "Pod").containers[0].image, `localhost:5000/docker.io/library/nginx:1.25@${hub.nginx.digest}`);

    const onRegistry = await fetch(`${berth.url}/admission`, { method: "POST", body: "{}" });
    assert.equal(onRegistry.status, 404);
  });

  it("serves a renewed certificate without a restart, and keeps the old one while the new pair does not match", async (t) => {
    const live = { cert: join(dir.path, "live.crt"), key: join(dir.path, "live.key") };
    const first = await selfSigned(dir.path, "first");
    const second = await selfSigned(dir.path, "second");
    await writeFile(live.cert, await readFile(first.cert));
    await writeFile(live.key, await readFile(first.key));
    const routes = express.Router();
    const listener = await AdmissionListener.start(routes, { listen: "127.0.0.1:0", tlsCertFile: live.cert, tlsKeyFile: live.key }, pino({ level: "silent" }));
    t.after(() => listener.close(1000));
    assert.equal(await servedCertificate(listener.url), await fingerprint(first.cert));

    await writeFile(live.cert, await readFile(second.cert));
    assert.equal(await listener.reloadCertificate(), false, "a certificate without its key is not taken");
    assert.equal(await servedCertificate(listener.url), await fingerprint(first.cert));

    await writeFile(live.key, await readFile(second.key));
    assert.equal(await listener.reloadCertificate(), true);
    assert.equal(await servedCertificate(listener.url), await fingerprint(second.cert));
    assert.equal(await listener.reloadCertificate(), false, "unchanged files are not reloaded");
  });

  it("with clientCAFile, serves only clients whose certificate that CA signed and clientNames lists", async (t) => {
    const clientCA = await selfSigned(dir.path, "webhook-client-ca");
    const apiServer = await clientCertificate(dir.path, "api-server", "kube-apiserver-webhook-client", clientCA);
    const other = await clientCertificate(dir.path, "node", "system:node:worker-1", clientCA);
    const stranger = await clientCertificate(dir.path, "stranger", "kube-apiserver-webhook-client", await selfSigned(dir.path, "another-ca"));
    const berth = await startMirror([{ host: "docker.io", url: hub.origin.url }], {
      admission: { listen: "127.0.0.1:0", tlsCertFile: tls.cert, tlsKeyFile: tls.key, clientCAFile: clientCA.cert, clientNames: ["kube-apiserver-webhook-client"], registry: "localhost:5000" },
    });
    t.after(() => berth.stop());
    const url = `${berth.admissionUrl}/admission`;
    const serverCA = await readFile(tls.cert);
    const as = async (client: { cert: string; key: string }) => ({ cert: await readFile(client.cert), key: await readFile(client.key) });
    const pod = workload("Pod", [{ name: "web", image: "nginx:1.25" }]);

    const admitted = await postHttps(url, admissionReview("Pod", pod, { uid: "mtls-1" }), serverCA, await as(apiServer));
    assert.equal(admitted.status, 200);
    assert.equal((admitted.json.response as { uid: string }).uid, "mtls-1");
    await assert.rejects(postHttps(url, admissionReview("Pod", pod), serverCA), "no client certificate: the handshake fails");
    await assert.rejects(postHttps(url, admissionReview("Pod", pod), serverCA, await as(stranger)), "a certificate another CA signed: the handshake fails");
    const misnamed = await postHttps(url, admissionReview("Pod", pod), serverCA, await as(other));
    assert.equal(misnamed.status, 403);
    assert.equal(misnamed.json.kind, "Status");
    assert.equal(misnamed.json.response, undefined, "no review is answered");
  });

  it("refuses to start with an unreadable certificate, naming the key", async () => {
    const config = parseConfig(
      { listen: "127.0.0.1:0", storage: { root: join(dir.path, "unreadable") }, admission: { listen: "127.0.0.1:0", tlsCertFile: join(dir.path, "missing.crt"), tlsKeyFile: tls.key, rewriteImages: false } },
      "test",
    );
    await assert.rejects(startBerth(config, createLogger("silent")), (err: unknown) => err instanceof ConfigError && /^admission\.tlsCertFile: cannot read .*missing\.crt/.test(err.message));
  });
});

describe("admission config", () => {
  const refused: [string, Record<string, unknown>, RegExp][] = [
    ["a listener without a certificate", { listen: "127.0.0.1:8443", registry: "localhost:5000" }, /admission\.tlsCertFile: required with admission\.listen/],
    ["certificate files without a listener", { tlsCertFile: "c", tlsKeyFile: "k", registry: "localhost:5000" }, /admission\.listen: tlsCertFile, tlsKeyFile and clientCAFile need a listen address/],
    ["client names without a client CA", { listen: "127.0.0.1:8443", tlsCertFile: "c", tlsKeyFile: "k", registry: "localhost:5000", clientNames: ["kube-apiserver"] }, /admission\.clientNames: needs clientCAFile/],
    ["a tenant that is not a DNS label", { registry: "localhost:5000", namespaceTenants: [{ namespaces: ["a-*"], tenant: "Team_A" }] }, /admission\.namespaceTenants\.0\.tenant: must be a DNS label/],
    ["rewriting without saying how nodes name berth", {}, /admission\.registry: required when rewriteImages is true/],
    ["an unknown failure policy", { registry: "localhost:5000", failurePolicy: "Retry" }, /admission\.failurePolicy: /],
  ];
  for (const [what, admission, message] of refused) {
    it(`refuses ${what}`, () => {
      assert.throws(() => parseConfig({ admission }, "berth.yaml"), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    });
  }

  it("defaults to rewriting, pinning, Ignore, a 5s resolve timeout and excluding kube-system", () => {
    assert.deepEqual(parseConfig({ admission: { registry: "localhost:5000" } }, "test").admission, {
      registry: "localhost:5000",
      rewriteImages: true,
      pinDigests: true,
      failurePolicy: "Ignore",
      resolveTimeout: 5000,
      excludeNamespaces: ["kube-system"],
      excludeImages: [],
      namespaceTenants: [],
      clientNames: [],
    });
    assert.equal(parseConfig({}, "test").admission, undefined, "absent, the webhook is off");
  });

  it("will not serve /admission on the registry's listener in token mode", async () => {
    const dir = await makeTempDir("admission-token");
    try {
      const config = parseConfig({ listen: "127.0.0.1:0", storage: { root: dir.path }, auth: { mode: "token" }, admission: { registry: "localhost:5000" } }, "test");
      await assert.rejects(startBerth(config, createLogger("silent")), (err: unknown) => err instanceof ConfigError && /^admission\.listen: required in auth\.mode token/.test(err.message));
    } finally {
      await dir.remove();
    }
  });
});
