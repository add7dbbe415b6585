import { readFile } from "node:fs/promises";
import { parse as parseYaml, YAMLError } from "yaml";
import { Credential } from "./credential.js";
import { decodeRawStdBase64, decodeStdBase64 } from "./go-base64.js";
import { goJsonField as field, isJsonObject as isObject, type JsonObject } from "./go-json.js";
import { credentialKey } from "./registry-key.js";

/**
 * docker `config.json` (`auths`, `credHelpers`, `credsStore`), a legacy `.dockercfg` (a
 * top-level map of entries), or a Kubernetes Secret of type `kubernetes.io/dockerconfigjson`
 * or `kubernetes.io/dockercfg`, in JSON or YAML. Told apart by content.
 */
export type CredentialFileFormat = "docker-config" | "dockercfg" | "secret";

/** A credential stored in the file, under its keyring key. */
export interface KeyedCredential {
  key: string;
  credential: Credential;
}

/** A `credHelpers` entry: the helper that holds the credential for a key. */
export interface KeyedHelper {
  key: string;
  /** Suffix of the `docker-credential-<helper>` executable. */
  helper: string;
  source: string;
}

export interface CredentialFile {
  format: CredentialFileFormat;
  credentials: KeyedCredential[];
  helpers: KeyedHelper[];
  /** `credsStore`: the helper asked about every registry, after everything matched by key. */
  store?: { helper: string; source: string };
  /** Entries whose location Go's URL parser rejects; kubelet skips them, and so does berth. */
  ignored: string[];
}

export type CredentialFileErrorCode = "CREDENTIAL_FILE_UNREADABLE" | "CREDENTIAL_FILE_INVALID" | "CREDENTIAL_KEY_IGNORED";

/** A credential file berth cannot use. The message is one line, names the file, never a secret. */
export class CredentialFileError extends Error {
  constructor(
    readonly code: CredentialFileErrorCode,
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = "CredentialFileError";
  }
}

export async function readCredentialFile(path: string): Promise<CredentialFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new CredentialFileError("CREDENTIAL_FILE_UNREADABLE", path, `${path}: cannot read (${code})`);
  }
  return parseCredentialFile(text, path);
}

export function parseCredentialFile(text: string, path: string): CredentialFile {
  const reader = new FileReader(path);
  const document = reader.parseText(text.replace(/^\uFEFF/, ""), "");
  const top = reader.object(document, "");
  switch (detectFormat(top)) {
    case "secret":
      return reader.secret(top);
    case "dockercfg":
      return reader.entries(top, "dockercfg", `${path} `, "");
    case "docker-config":
      return reader.dockerConfig(top, `${path} `, "", true);
  }
}

const ENTRY_FIELDS = ["auth", "username", "password", "email", "identitytoken", "registrytoken"];
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SECRET_KEYS: Record<string, string> = {
  "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
  "kubernetes.io/dockercfg": ".dockercfg",
};

function detectFormat(top: JsonObject): CredentialFileFormat {
  if (field(top, "kind") === "Secret") return "secret";
  if (["auths", "credHelpers", "credsStore"].some((name) => field(top, name) !== undefined)) return "docker-config";
  const values = Object.values(top);
  const looksLegacy = values.length > 0 && values.every((v) => isObject(v) && ENTRY_FIELDS.some((name) => field(v, name) !== undefined));
  return looksLegacy ? "dockercfg" : "docker-config";
}

/** Parses one file, turning every problem into a CredentialFileError that names it. */
class FileReader {
  constructor(private readonly path: string) {}

  fail(where: string, problem: string): never {
    const at = where === "" ? "" : ` ${where}`;
    throw new CredentialFileError("CREDENTIAL_FILE_INVALID", this.path, `${this.path}:${at} ${problem}`);
  }

  /** JSON or YAML; parser messages are not passed on because they quote the text (the secrets). */
  parseText(text: string, where: string): unknown {
    if (text.trim() === "") return {};
    if (/^\s*[[{]/.test(text)) {
      try {
        return JSON.parse(text);
      } catch (err) {
        const position = /at position (\d+)/.exec((err as Error).message);
        this.fail(where, position ? `invalid JSON at ${lineAndColumn(text, Number(position[1]))}` : "invalid JSON");
      }
    }
    try {
      return parseYaml(text);
    } catch (err) {
      const position = err instanceof YAMLError ? err.linePos?.[0] : undefined;
      this.fail(where, position ? `invalid YAML at line ${position.line} column ${position.col}` : "invalid YAML");
    }
  }

  object(value: unknown, where: string): JsonObject {
    if (!isObject(value)) this.fail(where, where === "" ? "content must be a JSON or YAML object" : "must be an object");
    return value;
  }

  optionalString(value: unknown, where: string): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "string") this.fail(where, "must be a string");
    return value;
  }

  dockerConfig(top: JsonObject, sourcePrefix: string, wherePrefix: string, withHelpers: boolean): CredentialFile {
    const auths = field(top, "auths");
    const file =
      auths === undefined || auths === null
        ? emptyFile("docker-config")
        : this.entries(this.object(auths, `${wherePrefix}auths`), "docker-config", `${sourcePrefix}auths`, `${wherePrefix}auths`);
    if (!withHelpers) return file;
    const helpers = field(top, "credHelpers");
    if (helpers !== undefined && helpers !== null) {
      for (const [location, helper] of Object.entries(this.object(helpers, "credHelpers"))) {
        const where = `credHelpers[${JSON.stringify(location)}]`;
        const name = this.helperName(helper, where);
        const key = credentialKey(location);
        const source = `${sourcePrefix}${where} (docker-credential-${name})`;
        if (key === undefined) file.ignored.push(source);
        else file.helpers.push({ key, helper: name, source });
      }
    }
    const store = this.optionalString(field(top, "credsStore"), "credsStore");
    if (store) file.store = { helper: this.helperName(store, "credsStore"), source: `${sourcePrefix}credsStore (docker-credential-${store})` };
    return file;
  }

  /** A map of location → entry: `auths` of a config.json, or a whole `.dockercfg`. */
  entries(map: JsonObject, format: CredentialFileFormat, sourcePrefix: string, wherePrefix: string): CredentialFile {
    const file = emptyFile(format);
    for (const [location, value] of Object.entries(map)) {
      const where = `${wherePrefix}[${JSON.stringify(location)}]`;
      const source = `${sourcePrefix}[${JSON.stringify(location)}]`;
      const credential = this.entry(value, where, source);
      const key = credentialKey(location);
      if (key === undefined) file.ignored.push(source);
      else if (!credential.isEmpty) file.credentials.push({ key, credential });
    }
    return file;
  }

  /** One entry; like kubelet, a non-empty `auth` (base64 `user:password`) overrides username and password. */
  entry(value: unknown, where: string, source: string): Credential {
    if (value === null) return new Credential({}, source);
    const entry = this.object(value, where);
    const text = (name: string) => this.optionalString(field(entry, name), `${where}.${name}`);
    const [username, password, auth, identityToken, registryToken] = ["username", "password", "auth", "identitytoken", "registrytoken"].map(text);
    text("email");
    const basic = auth ? this.decodeAuth(auth, `${where}.auth`) : { username: username ?? "", password: password ?? "" };
    return new Credential(
      {
        ...(basic.username || basic.password ? basic : {}),
        ...(identityToken ? { identityToken } : {}),
        ...(registryToken ? { registryToken } : {}),
      },
      source,
    );
  }

  decodeAuth(auth: string, where: string): { username: string; password: string } {
    // kubelet: trailing '=' means padded standard base64, otherwise unpadded.
    const bytes = auth.trim().endsWith("=") ? decodeStdBase64(auth) : decodeRawStdBase64(auth);
    if (!bytes) this.fail(where, "is not valid base64");
    const text = bytes.toString("utf8");
    const colon = text.indexOf(":");
    if (colon < 0) this.fail(where, 'must be base64 of "username:password"');
    return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }

  helperName(value: unknown, where: string): string {
    const name = this.optionalString(value, where) ?? "";
    if (!HELPER_NAME.test(name)) this.fail(where, "must name a docker-credential-<name> helper (letters, digits, '.', '_', '-')");
    return name;
  }

  /** kubelet reads only the credentials of a Secret (never helpers): `auths` of a dockerconfigjson, the map of a dockercfg. */
  secret(secret: JsonObject): CredentialFile {
    const type = this.optionalString(field(secret, "type"), "type");
    const dataKey = type === undefined ? undefined : SECRET_KEYS[type];
    if (dataKey === undefined) this.fail("type", `Secret type ${JSON.stringify(type ?? "")} is not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg`);
    const text = this.secretValue(secret, dataKey);
    const inner = this.object(this.parseText(text, dataKey), dataKey);
    const sourcePrefix = `${this.path} ${dataKey} `;
    const file =
      dataKey === ".dockercfg" ? this.entries(inner, "dockercfg", sourcePrefix, dataKey) : this.dockerConfig(inner, sourcePrefix, `${dataKey} `, false);
    return { ...file, format: "secret" };
  }

  /** `stringData` wins over `data`, as when the API server merges them. */
  secretValue(secret: JsonObject, dataKey: string): string {
    const stringData = field(secret, "stringData");
    const plain = isObject(stringData) ? this.optionalString(stringData[dataKey], `stringData[${JSON.stringify(dataKey)}]`) : undefined;
    if (plain !== undefined) return plain;
    const data = field(secret, "data");
    const where = `data[${JSON.stringify(dataKey)}]`;
    const encoded = isObject(data) ? this.optionalString(data[dataKey], where) : undefined;
    if (encoded === undefined) this.fail(where, "is missing (and so is stringData's)");
    const bytes = decodeStdBase64(encoded);
    if (!bytes) this.fail(where, "is not valid base64");
    return bytes.toString("utf8");
  }
}

function emptyFile(format: CredentialFileFormat): CredentialFile {
  return { format, credentials: [], helpers: [], ignored: [] };
}

function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split("\n");
  return `line ${before.length} column ${before[before.length - 1].length + 1}`;
}
