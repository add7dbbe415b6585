#!/usr/bin/env node
import {
  berthUrlFrom,
  fetchCredential,
  passwordFrom,
  PluginError,
  readStdin,
  registryHostsFrom,
  TOKEN_USERNAME,
  type CredentialSource,
} from "../shared/berth-credentials.js";

/**
 * Docker credential helper (docker-credential-helpers protocol): `get` answers a fresh
 * short-lived berth credential for berth's server URL. Credentials come from the node's
 * configuration (BERTH_URL, BERTH_USERNAME, BERTH_PASSWORD or BERTH_PASSWORD_FILE), so `store`
 * and `erase` accept and ignore their input.
 */

const CLIENT_ID = "docker-credential-berth";
const VERSION = "0.1.0";
/** The protocol's messages, matched verbatim by docker, containers/image and oras clients on stdout. */
const NOT_FOUND = "credentials not found in native keychain";
const MISSING_SERVER_URL = "no credentials server URL";

const USAGE = "usage: docker-credential-berth <get|store|erase|list|version>";

/** A protocol failure: `stdout` is the message clients match, `reason` the diagnosis for stderr. */
class HelperError extends Error {
  constructor(
    readonly stdout: string,
    reason: string,
  ) {
    super(reason);
  }
}

async function main(action: string | undefined): Promise<void> {
  switch (action) {
    case "get":
      return get((await readStdin()).trim());
    case "store":
    case "erase":
      await readStdin();
      return;
    case "list":
      return list();
    case "version":
      process.stdout.write(`docker-credential-berth (berth) ${VERSION}\n`);
      return;
    default:
      throw new HelperError(USAGE, USAGE);
  }
}

async function get(serverUrl: string): Promise<void> {
  if (serverUrl === "") throw new HelperError(MISSING_SERVER_URL, MISSING_SERVER_URL);
  const source = configuredSource();
  const host = hostOf(serverUrl);
  if (!source || !source.registryHosts.includes(host)) {
    throw new HelperError(NOT_FOUND, `${serverUrl} is not berth (${source ? `berth is ${source.registryHosts.join(", ")}` : "no BERTH_URL configured"})`);
  }
  const username = process.env.BERTH_USERNAME;
  const password = await passwordFrom(undefined, process.env);
  if (!username || password === undefined) throw new PluginError("no node credential: set BERTH_USERNAME, and BERTH_PASSWORD or BERTH_PASSWORD_FILE");
  const credential = await fetchCredential(source.berthUrl, { username, password }, CLIENT_ID);
  process.stdout.write(`${JSON.stringify({ ServerURL: serverUrl, Username: credential.username, Secret: credential.password })}\n`);
}

function list(): void {
  const source = configuredSource();
  const entries = source ? source.registryHosts.map((host) => [host, TOKEN_USERNAME]) : [];
  process.stdout.write(`${JSON.stringify(Object.fromEntries(entries))}\n`);
}

function configuredSource(): CredentialSource | undefined {
  const berthUrl = berthUrlFrom(undefined, process.env);
  return berthUrl && { berthUrl, registryHosts: registryHostsFrom(undefined, process.env, berthUrl) };
}

/** `https://berth.local:5000/v2/` and `berth.local:5000` both name `berth.local:5000`. */
function hostOf(serverUrl: string): string {
  return serverUrl.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").split("/")[0].toLowerCase();
}

main(process.argv[2]).catch((err: unknown) => {
  const reason = err instanceof Error ? err.message : String(err);
  process.stderr.write(`docker-credential-berth: ${reason}\n`);
  process.stdout.write(`${err instanceof HelperError ? err.stdout : reason}\n`);
  process.exitCode = 1;
});
