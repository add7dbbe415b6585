import { createHash, createPrivateKey, createPublicKey, generateKeyPair, type JsonWebKey, type KeyObject } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { ConfigError } from "../../config/load.js";

export type SigningAlgorithm = "ES256" | "RS256";

export interface VerificationKey {
  /** RFC 7638 thumbprint of the public key: the `kid` of tokens and of the JWKS entry. */
  kid: string;
  alg: SigningAlgorithm;
  publicKey: KeyObject;
}

export interface SigningKey extends VerificationKey {
  privateKey: KeyObject;
}

interface KeyEntry extends VerificationKey {
  privateKey?: KeyObject;
  createdAt: number;
  /** Once replaced: when the last token it signed expires. */
  retiresAt?: number;
  /** The file of a generated key, removed on retirement. */
  file?: string;
}

export interface KeyRingOptions {
  /** Algorithm of generated keys. */
  algorithm: SigningAlgorithm;
  /** Where generated keys are kept; unused when signingKeyFile is given. */
  directory: string;
  signingKeyFile?: string;
  verificationKeyFiles: readonly string[];
  /** Age (ms) after which a generated key is replaced; 0 = never. */
  rotationMs: number;
  /** How long (ms) a replaced key keeps verifying: the longest token lifetime. */
  retentionMs: number;
  now: () => number;
}

const generate = promisify(generateKeyPair);
const KEY_FILE = /^(\d+)\.pem$/;

/**
 * The keys berth signs and verifies tokens with. The newest key signs; a replaced key keeps
 * verifying until every token it signed has expired, then it is dropped (and its file deleted).
 */
export class KeyRing {
  private readonly entries: KeyEntry[] = [];
  private rotation?: Promise<SigningKey>;

  private constructor(private readonly options: KeyRingOptions) {}

  static async open(options: KeyRingOptions): Promise<KeyRing> {
    const ring = new KeyRing(options);
    if (options.signingKeyFile !== undefined) {
      const privateKey = await readKey(options.signingKeyFile, "private");
      ring.entries.push({ ...describeKey(publicKeyOf(privateKey, options.signingKeyFile), options.signingKeyFile), privateKey, createdAt: 0 });
    } else {
      await ring.loadGenerated();
    }
    for (const file of options.verificationKeyFiles) {
      const publicKey = publicKeyOf(await readKey(file, "any"), file);
      ring.entries.unshift({ ...describeKey(publicKey, file), createdAt: -1 });
    }
    await ring.signingKey();
    return ring;
  }

  /** The key to sign with now; replaces a generated key that is due for rotation first. */
  async signingKey(): Promise<SigningKey> {
    await this.prune();
    const current = this.entries.at(-1);
    if (current?.privateKey && !this.dueForRotation(current)) return current as SigningKey;
    this.rotation ??= this.rotate().finally(() => (this.rotation = undefined));
    return this.rotation;
  }

  /** Generates a new signing key; the previous one keeps verifying for the retention period. */
  async rotate(): Promise<SigningKey> {
    if (this.options.signingKeyFile !== undefined) throw new Error("signing key comes from auth.token.signingKeyFile: rotate by replacing that file");
    const { privateKey } =
      this.options.algorithm === "ES256" ? await generate("ec", { namedCurve: "P-256" }) : await generate("rsa", { modulusLength: 2048 });
    const createdAt = Math.max(this.options.now(), (this.entries.at(-1)?.createdAt ?? 0) + 1);
    const file = join(this.options.directory, `${createdAt}.pem`);
    await mkdir(this.options.directory, { recursive: true, mode: 0o700 });
    const temp = `${file}.tmp`;
    await writeFile(temp, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    await rename(temp, file);
    const previous = this.entries.at(-1);
    if (previous) previous.retiresAt = createdAt + this.options.retentionMs;
    const entry: KeyEntry = { ...describeKey(publicKeyOf(privateKey, file), file), privateKey, createdAt, file };
    this.entries.push(entry);
    return entry as SigningKey;
  }

  /** The key a token names in its `kid`, while it may still verify. */
  verificationKey(kid: string): VerificationKey | undefined {
    const now = this.options.now();
    return this.entries.find((entry) => entry.kid === kid && (entry.retiresAt === undefined || entry.retiresAt > now));
  }

  /** The public keys that currently verify, as a JWKS document. */
  jwks(): { keys: JsonWebKey[] } {
    const now = this.options.now();
    return {
      keys: this.entries
        .filter((entry) => entry.retiresAt === undefined || entry.retiresAt > now)
        .map((entry) => ({ ...entry.publicKey.export({ format: "jwk" }), kid: entry.kid, alg: entry.alg, use: "sig" })),
    };
  }

  private dueForRotation(entry: KeyEntry): boolean {
    if (entry.file === undefined) return false;
    if (entry.alg !== this.options.algorithm) return true;
    return this.options.rotationMs > 0 && this.options.now() - entry.createdAt >= this.options.rotationMs;
  }

  private async loadGenerated(): Promise<void> {
    const names = await readdir(this.options.directory).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [] as string[];
      throw err;
    });
    const files = names
      .map((name) => ({ name, createdAt: Number(KEY_FILE.exec(name)?.[1]) }))
      .filter((f) => Number.isSafeInteger(f.createdAt))
      .sort((a, b) => a.createdAt - b.createdAt);
    for (const [index, { name, createdAt }] of files.entries()) {
      const file = join(this.options.directory, name);
      const privateKey = await readKey(file, "private");
      const next = files[index + 1];
      this.entries.push({
        ...describeKey(publicKeyOf(privateKey, file), file),
        privateKey,
        createdAt,
        file,
        ...(next ? { retiresAt: next.createdAt + this.options.retentionMs } : {}),
      });
    }
  }

  private async prune(): Promise<void> {
    const now = this.options.now();
    for (let i = this.entries.length - 2; i >= 0; i--) {
      const entry = this.entries[i];
      if (entry.retiresAt === undefined || entry.retiresAt > now) continue;
      this.entries.splice(i, 1);
      if (entry.file) await rm(entry.file, { force: true });
    }
  }
}

async function readKey(file: string, kind: "private" | "any"): Promise<KeyObject> {
  let pem: Buffer;
  try {
    pem = await readFile(file);
  } catch (err) {
    throw new ConfigError(`${file}: cannot read key: ${(err as Error).message}`);
  }
  try {
    return kind === "private" ? createPrivateKey(pem) : pem.includes("PRIVATE KEY") ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (err) {
    throw new ConfigError(`${file}: not a PEM ${kind === "private" ? "private " : ""}key: ${(err as Error).message}`);
  }
}

function publicKeyOf(key: KeyObject, file: string): KeyObject {
  try {
    return key.type === "public" ? key : createPublicKey(key);
  } catch (err) {
    throw new ConfigError(`${file}: ${(err as Error).message}`);
  }
}

function describeKey(publicKey: KeyObject, file: string): VerificationKey {
  const alg = algorithmOf(publicKey);
  if (!alg) throw new ConfigError(`${file}: berth signs with EC P-256 (ES256) or RSA of at least 2048 bits (RS256) keys only`);
  return { kid: thumbprint(publicKey), alg, publicKey };
}

function algorithmOf(key: KeyObject): SigningAlgorithm | undefined {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "ec" && details?.namedCurve === "prime256v1") return "ES256";
  if (key.asymmetricKeyType === "rsa" && (details?.modulusLength ?? 0) >= 2048) return "RS256";
  return undefined;
}

/** RFC 7638: SHA-256 over the required members of the JWK, in lexical order, base64url. */
function thumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: "jwk" });
  const members = jwk.kty === "EC" ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  return createHash("sha256").update(JSON.stringify(members)).digest("base64url");
}
