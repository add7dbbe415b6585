import { createHash, createPrivateKey, createPublicKey, generateKeyPair, type JsonWebKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { ConfigError } from "../../config/load.js";
import type { GeneratedKeyStore, StoredKey } from "./generated-keys.js";

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
  /** A key berth generated (kept in the store, removed from it on retirement). */
  generated?: true;
}

export interface KeyRingOptions {
  /** Algorithm of generated keys. */
  algorithm: SigningAlgorithm;
  /** Where generated keys are kept; unused when signingKeyFile is given. */
  store: GeneratedKeyStore;
  signingKeyFile?: string;
  verificationKeyFiles: readonly string[];
  /** Age (ms) after which a generated key is replaced; 0 = never. */
  rotationMs: number;
  /** How long (ms) a replaced key keeps verifying: the longest token lifetime. */
  retentionMs: number;
  now: () => number;
}

const generate = promisify(generateKeyPair);

/**
 * The keys berth signs and verifies tokens with. The newest key signs; a replaced key keeps
 * verifying until every token it signed has expired, then it is dropped (and removed from the
 * store). Generated keys are read from the store again before each signing and on a token
 * naming an unknown key, so a key another process sharing the store added is used at once.
 */
export class KeyRing {
  private readonly entries: KeyEntry[] = [];
  private rotation?: Promise<SigningKey>;
  /** The stored keys already parsed (stores hand out the same bytes for a key they read once). */
  private readonly read = new WeakSet<Buffer>();

  private constructor(private readonly options: KeyRingOptions) {}

  static async open(options: KeyRingOptions): Promise<KeyRing> {
    const ring = new KeyRing(options);
    if (options.signingKeyFile !== undefined) {
      const privateKey = await readKey(options.signingKeyFile, "private");
      ring.entries.push({ ...describeKey(publicKeyOf(privateKey, options.signingKeyFile), options.signingKeyFile), privateKey, createdAt: 0 });
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
    await this.refresh();
    const current = this.entries.at(-1);
    // Until a new key would reach every process sharing the store, the current one goes on signing.
    if (current?.privateKey && (!this.dueForRotation(current) || !this.options.store.readyToAdd())) return current as SigningKey;
    this.rotation ??= this.rotate().finally(() => (this.rotation = undefined));
    return this.rotation;
  }

  /** Generates a new signing key; the previous one keeps verifying for the retention period. */
  async rotate(): Promise<SigningKey> {
    if (this.options.signingKeyFile !== undefined) throw new Error("signing key comes from auth.token.signingKeyFile: rotate by replacing that file");
    const { privateKey } =
      this.options.algorithm === "ES256" ? await generate("ec", { namedCurve: "P-256" }) : await generate("rsa", { modulusLength: 2048 });
    const createdAt = Math.max(this.options.now(), (this.entries.at(-1)?.createdAt ?? 0) + 1);
    const entry: KeyEntry = { ...describeKey(publicKeyOf(privateKey, "generated key"), "generated key"), privateKey, createdAt, generated: true };
    await this.options.store.save({ createdAt, pem: Buffer.from(privateKey.export({ type: "pkcs8", format: "pem" })) }, entry.kid);
    this.add(entry);
    return entry as SigningKey;
  }

  /** The key a token names in its `kid`, while it may still verify. */
  async verificationKey(kid: string): Promise<VerificationKey | undefined> {
    if (!this.entries.some((entry) => entry.kid === kid)) await this.refresh();
    if (!this.entries.some((entry) => entry.kid === kid) && this.options.signingKeyFile === undefined) {
      const found = await this.options.store.find(kid);
      if (found) this.addStored(found);
    }
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
    if (!entry.generated) return false;
    if (entry.alg !== this.options.algorithm) return true;
    return this.options.rotationMs > 0 && this.options.now() - entry.createdAt >= this.options.rotationMs;
  }

  /** Adds the generated keys the store holds and the ring does not. */
  private async refresh(): Promise<void> {
    if (this.options.signingKeyFile !== undefined) return;
    for (const stored of await this.options.store.load()) this.addStored(stored);
  }

  private addStored({ createdAt, pem }: StoredKey): void {
    if (this.read.has(pem)) return;
    this.read.add(pem);
    const source = `generated key ${createdAt}`;
    const privateKey = parseKey(pem, "private", source);
    this.add({ ...describeKey(publicKeyOf(privateKey, source), source), privateKey, createdAt, generated: true });
  }

  /** Adds a generated key in order of creation: each one retires when the next one's tokens no longer need it. */
  private add(entry: KeyEntry): void {
    if (this.entries.some((known) => known.kid === entry.kid)) return;
    this.entries.push(entry);
    this.entries.sort((a, b) => a.createdAt - b.createdAt);
    const generated = this.entries.filter((known) => known.generated);
    for (const [i, known] of generated.entries()) {
      const next = generated[i + 1];
      if (next) known.retiresAt = next.createdAt + this.options.retentionMs;
    }
  }

  private async prune(): Promise<void> {
    const now = this.options.now();
    for (let i = this.entries.length - 2; i >= 0; i--) {
      const entry = this.entries[i];
      if (entry.retiresAt === undefined || entry.retiresAt > now) continue;
      this.entries.splice(i, 1);
      if (entry.generated) await this.options.store.remove(entry.createdAt, entry.kid);
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
  return parseKey(pem, kind, file);
}

function parseKey(pem: Buffer, kind: "private" | "any", file: string): KeyObject {
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
