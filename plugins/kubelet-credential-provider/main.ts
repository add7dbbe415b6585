#!/usr/bin/env node
import { parseArgs } from "node:util";
import {
  berthUrlFrom,
  fetchCredential,
  NoCredentialNeeded,
  passwordFrom,
  PluginError,
  readStdin,
  registryHostsFrom,
  TOKEN_USERNAME,
} from "../shared/berth-credentials.js";

/**
 * kubelet exec credential provider (credentialprovider.kubelet.k8s.io v1, v1beta1, v1alpha1):
 * reads one CredentialProviderRequest on stdin, writes one CredentialProviderResponse on
 * stdout. Everything else goes to stderr; a failure exits non-zero with nothing on stdout.
 */

const API_VERSIONS = [
  "credentialprovider.kubelet.k8s.io/v1",
  "credentialprovider.kubelet.k8s.io/v1beta1",
  "credentialprovider.kubelet.k8s.io/v1alpha1",
];
const CLIENT_ID = "berth-credential-provider";
/** The kubelet's cache must drop a credential this long before berth stops accepting it. */
const CACHE_MARGIN_SECONDS = 60;

const USAGE = `usage: berth-credential-provider [--berth-url URL] [--username NAME] [--password-file FILE] [--registry HOST[:PORT]]...

Run by the kubelet (CredentialProviderConfig). Berth URL: --berth-url, BERTH_URL, or
BERTH_SERVICE_HOST/BERTH_SERVICE_PORT. Node credential: --username or BERTH_USERNAME, with
BERTH_PASSWORD or --password-file/BERTH_PASSWORD_FILE. A request carrying a serviceAccountToken
is answered with a credential for that service account instead. --registry (or
BERTH_REGISTRY_HOSTS, comma-separated) names the hosts images use for berth (default: the
berth URL's host).`;

interface CredentialProviderRequest {
  apiVersion: string;
  image: string;
  serviceAccountToken?: string;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "berth-url": { type: "string" },
      username: { type: "string" },
      "password-file": { type: "string" },
      registry: { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stderr.write(`${USAGE}\n`);
    return;
  }
  const request = parseRequest(await readStdin());
  const berthUrl = berthUrlFrom(values["berth-url"], process.env);
  if (!berthUrl) throw new PluginError("no berth URL: give --berth-url, BERTH_URL, or BERTH_SERVICE_HOST and BERTH_SERVICE_PORT");
  const registryHosts = registryHostsFrom(values.registry, process.env, berthUrl);
  // Host names are case-insensitive, but the kubelet matches the answer's keys against the
  // image case-sensitively (a glob per host label): key it exactly as the image writes it.
  const registry = request.image.split("/")[0];
  if (!registryHosts.includes(registry.toLowerCase())) throw new PluginError(`image ${request.image} is not on berth (berth is ${registryHosts.join(", ")})`);

  let proof: { username: string; password: string };
  if (request.serviceAccountToken) {
    proof = { username: TOKEN_USERNAME, password: request.serviceAccountToken };
  } else {
    const username = values.username ?? process.env.BERTH_USERNAME;
    const password = await passwordFrom(values["password-file"], process.env);
    if (!username || password === undefined) throw new PluginError("no node credential: give --username or BERTH_USERNAME, and BERTH_PASSWORD or --password-file");
    proof = { username, password };
  }
  let credential;
  try {
    credential = await fetchCredential(berthUrl, proof, CLIENT_ID);
  } catch (err) {
    if (!(err instanceof NoCredentialNeeded)) throw err;
    // An open berth: say "no credentials" in a valid answer, which the kubelet caches for its
    // defaultCacheDuration, instead of failing (and being run again) on every pull.
    process.stderr.write(`berth-credential-provider: ${err.message}; answering no credentials\n`);
    process.stdout.write(`${JSON.stringify({ kind: "CredentialProviderResponse", apiVersion: request.apiVersion, cacheKeyType: "Registry", auth: {} })}\n`);
    return;
  }
  const response = {
    kind: "CredentialProviderResponse",
    apiVersion: request.apiVersion,
    // A service-account credential is only good for that pod's images; a node credential for all of berth.
    cacheKeyType: request.serviceAccountToken ? "Image" : "Registry",
    cacheDuration: goDuration(Math.max(0, credential.expiresIn - CACHE_MARGIN_SECONDS)),
    auth: { [registry]: { username: credential.username, password: credential.password } },
  };
  process.stdout.write(`${JSON.stringify(response)}\n`);
}

function parseRequest(text: string): CredentialProviderRequest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PluginError("stdin is not a JSON CredentialProviderRequest");
  }
  const request = value as Partial<CredentialProviderRequest> & { kind?: unknown };
  if (typeof request !== "object" || request === null || request.kind !== "CredentialProviderRequest") {
    throw new PluginError("stdin is not a CredentialProviderRequest (kind)");
  }
  if (typeof request.apiVersion !== "string" || !API_VERSIONS.includes(request.apiVersion)) {
    throw new PluginError(`unsupported apiVersion ${JSON.stringify(request.apiVersion)}; supported: ${API_VERSIONS.join(", ")}`);
  }
  if (typeof request.image !== "string" || request.image === "") throw new PluginError("request has no image");
  if (request.serviceAccountToken !== undefined && typeof request.serviceAccountToken !== "string") throw new PluginError("serviceAccountToken is not a string");
  return request as CredentialProviderRequest;
}

/** Formats whole seconds the way Go's time.Duration prints them: 0s, 59s, 9m0s, 1h0m0s. */
function goDuration(seconds: number): string {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  if (hours > 0) return `${hours}h${minutes}m${rest}s`;
  if (minutes > 0) return `${minutes}m${rest}s`;
  return `${rest}s`;
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const reason = err instanceof PluginError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") ? (err as Error).message : String((err as Error).stack ?? err);
  process.stderr.write(`berth-credential-provider: ${reason}\n`);
  process.exitCode = 1;
});
