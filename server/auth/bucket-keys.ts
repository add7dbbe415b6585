import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import type { StorageDriver } from "../storage/driver.js";
import type { GeneratedKeyStore, StoredKey } from "./generated-keys.js";

const PREFIX = "auth/signing-keys";
/** A kid: an RFC 7638 thumbprint, SHA-256 in base64url. */
const KID = /^[A-Za-z0-9_-]{43}$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A key the store cannot decrypt: written by a replica with another secret, or altered. */
export class SealedKeyError extends Error {}

/**
 * Generated signing keys in the store the replicas share, so a token one replica signs
 * verifies on all: one object per key, `auth/signing-keys/<kid>`, holding when it was made and
 * its PEM, sealed with AES-256-GCM under a key derived (HKDF) from the replicas' internal
 * secret, the object's name authenticated with it. Which keys exist comes from the storage's
 * index, which the replicas keep up to date for each other (`shared` says whether that holds
 * right now); a key it missed is still found by its kid.
 */
export class BucketKeys implements GeneratedKeyStore {
  private readonly key: Buffer;
  /** kid → its key, as decrypted once. */
  private readonly read = new Map<string, StoredKey>();
  /** kid → why its key does not decrypt, found once. */
  private readonly refused = new Map<string, SealedKeyError>();

  constructor(
    private readonly driver: StorageDriver,
    secret: string,
    private readonly shared: () => boolean,
  ) {
    this.key = Buffer.from(hkdfSync("sha256", secret, "berth", "token signing keys", 32));
  }

  /**
   * Keys another secret sealed are left out, so one misconfigured replica cannot stop the
   * others; but when none decrypts, this replica is the one with another secret: it says so.
   */
  async load(): Promise<StoredKey[]> {
    const keys: StoredKey[] = [];
    let refused: SealedKeyError | undefined;
    for (const kid of await this.driver.list(PREFIX)) {
      try {
        const key = await this.open(kid);
        if (key) keys.push(key);
      } catch (err) {
        if (!(err instanceof SealedKeyError)) throw err;
        refused = err;
      }
    }
    if (refused && keys.length === 0) throw refused;
    return keys;
  }

  /** The key kid names; undefined too when it does not decrypt (it verifies nothing). */
  async find(kid: string): Promise<StoredKey | undefined> {
    try {
      return await this.open(kid);
    } catch (err) {
      if (err instanceof SealedKeyError) return undefined;
      throw err;
    }
  }

  /** The key kid names; rejects with SealedKeyError when it does not decrypt. */
  private async open(kid: string): Promise<StoredKey | undefined> {
    if (!KID.test(kid)) return undefined;
    let key = this.read.get(kid);
    if (key) return key;
    const refused = this.refused.get(kid);
    if (refused) throw refused;
    const sealed = await this.driver.readSmall(`${PREFIX}/${kid}`);
    if (!sealed) return undefined; // never made, or retired meanwhile
    let opened: Buffer;
    try {
      opened = this.unseal(sealed, kid);
    } catch (err) {
      this.refused.set(kid, err as SealedKeyError);
      throw err;
    }
    const newline = opened.indexOf("\n");
    this.read.set(kid, (key = { createdAt: Number(opened.subarray(0, newline).toString()), pem: opened.subarray(newline + 1) }));
    return key;
  }

  async save(key: StoredKey, kid: string): Promise<void> {
    await this.driver.writeSmall(`${PREFIX}/${kid}`, this.seal(Buffer.concat([Buffer.from(`${key.createdAt}\n`), key.pem]), kid));
    this.read.set(kid, key);
  }

  async remove(_createdAt: number, kid: string): Promise<void> {
    this.read.delete(kid);
    this.refused.delete(kid);
    await this.driver.delete(`${PREFIX}/${kid}`);
  }

  readyToAdd(): boolean {
    return this.shared();
  }

  private seal(pem: Buffer, name: string): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv).setAAD(Buffer.from(name));
    const data = Buffer.concat([cipher.update(pem), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), data]);
  }

  private unseal(sealed: Buffer, name: string): Buffer {
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.key, sealed.subarray(0, IV_BYTES)).setAAD(Buffer.from(name));
      decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
    } catch (err) {
      throw new SealedKeyError(`token signing key ${PREFIX}/${name} does not decrypt: is coordination.internal.secretFile the same on every replica?`, { cause: err });
    }
  }
}
