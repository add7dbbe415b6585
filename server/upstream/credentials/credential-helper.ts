import { spawn } from "node:child_process";
import { Credential } from "./credential.js";
import { goJsonField, isJsonObject } from "./go-json.js";

export type CredentialHelperErrorCode =
  | "CREDENTIAL_HELPER_MISSING"
  | "CREDENTIAL_HELPER_FAILED"
  | "CREDENTIAL_HELPER_TIMEOUT"
  | "CREDENTIAL_HELPER_BAD_OUTPUT";

/** A helper that gave no usable answer. The message never quotes the helper's output. */
export class CredentialHelperError extends Error {
  constructor(
    readonly code: CredentialHelperErrorCode,
    readonly helper: string,
    readonly serverUrl: string,
    problem: string,
  ) {
    super(`docker-credential-${helper} get ${serverUrl}: ${problem}`);
    this.name = "CredentialHelperError";
  }
}

export interface CredentialHelperRequest {
  /** Suffix of the `docker-credential-<helper>` executable, found on PATH. */
  helper: string;
  /** What the helper is asked about: `host[:port]`, or `https://index.docker.io/v1/` for Docker Hub. */
  serverUrl: string;
  /** Recorded as the credential's source. */
  source: string;
  timeoutMs: number;
}

/** What every docker-credential-helpers store prints when it holds nothing for the server. */
const NOT_FOUND = "credentials not found in native keychain";
/** docker's convention: this username means the secret is an identity (refresh) token. */
const TOKEN_USERNAME = "<token>";
const MAX_OUTPUT_BYTES = 64 * 1024;

/**
 * The docker credential-helper protocol's `get`: the server URL on stdin, a JSON
 * `{"ServerURL","Username","Secret"}` on stdout. Resolves undefined when the helper holds
 * no credential for the server. Its stderr is discarded; its stdout is only parsed.
 */
export function getFromCredentialHelper(request: CredentialHelperRequest): Promise<Credential | undefined> {
  const { helper, serverUrl, source, timeoutMs } = request;
  const failure = (code: CredentialHelperErrorCode, problem: string) => new CredentialHelperError(code, helper, serverUrl, problem);
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout also ends anything it started.
    const child = spawn(`docker-credential-${helper}`, ["get"], { stdio: ["pipe", "pipe", "ignore"], detached: true });
    const output: Buffer[] = [];
    let outputBytes = 0;
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const stop = (error: CredentialHelperError) => {
      settle(() => reject(error));
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      child.stdout.destroy();
    };
    const timer = setTimeout(() => stop(failure("CREDENTIAL_HELPER_TIMEOUT", `no answer within ${timeoutMs} ms`)), timeoutMs);

    child.on("error", (err: NodeJS.ErrnoException) => {
      settle(() =>
        reject(err.code === "ENOENT" ? failure("CREDENTIAL_HELPER_MISSING", "not found on PATH") : failure("CREDENTIAL_HELPER_FAILED", `cannot run (${err.code ?? "error"})`)),
      );
    });
    child.stdout.on("data", (chunk: Buffer) => {
      outputBytes += chunk.length;
      if (outputBytes > MAX_OUTPUT_BYTES) stop(failure("CREDENTIAL_HELPER_BAD_OUTPUT", `printed more than ${MAX_OUTPUT_BYTES} bytes`));
      else output.push(chunk);
    });
    child.on("close", (code, signal) => {
      const text = Buffer.concat(output).toString("utf8");
      if (code !== 0) {
        if (text.trim() === NOT_FOUND) settle(() => resolve(undefined));
        else stop(failure("CREDENTIAL_HELPER_FAILED", signal ? `killed by ${signal}` : `exited with code ${code}`));
        return;
      }
      let credential: Credential | undefined;
      try {
        credential = credentialFromOutput(text, source);
      } catch {
        stop(failure("CREDENTIAL_HELPER_BAD_OUTPUT", "did not print a JSON credential"));
        return;
      }
      settle(() => resolve(credential));
    });
    // A helper may exit without reading stdin; the resulting EPIPE is not the failure to report.
    child.stdin.on("error", () => {});
    child.stdin.end(serverUrl);
  });
}

function credentialFromOutput(text: string, source: string): Credential | undefined {
  const answer: unknown = JSON.parse(text);
  if (!isJsonObject(answer)) throw new TypeError("not an object");
  const [username, secret] = ["Username", "Secret"].map((name) => {
    const value = goJsonField(answer, name);
    if (value !== undefined && value !== null && typeof value !== "string") throw new TypeError(`${name} is not a string`);
    return value ?? "";
  });
  if (!username && !secret) return undefined;
  return username === TOKEN_USERNAME ? new Credential({ identityToken: secret }, source) : new Credential({ username, password: secret }, source);
}
