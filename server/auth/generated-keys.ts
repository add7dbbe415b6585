import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** A signing key berth generated: its PKCS#8 PEM and when it was made (ms). */
export interface StoredKey {
  createdAt: number;
  pem: Buffer;
}

/**
 * Where generated token signing keys are kept. A single berth keeps them in a directory of its
 * own; replicas keep them in the shared bucket, so a token one signs verifies on all.
 */
export interface GeneratedKeyStore {
  /** Every key kept now, in any order. */
  load(): Promise<StoredKey[]>;
  /** The key whose thumbprint is kid, when load missed it (another process added it unseen). */
  find(kid: string): Promise<StoredKey | undefined>;
  /** Keeps a new key; `kid` is its thumbprint. */
  save(key: StoredKey, kid: string): Promise<void>;
  remove(createdAt: number, kid: string): Promise<void>;
  /** Whether a key saved now reaches every process using the store at once (else rotation waits). */
  readyToAdd(): boolean;
}

const KEY_FILE = /^(\d+)\.pem$/;

/** Generated keys in a local directory, one `<createdAt>.pem` each (mode 0600). */
export class KeyDirectory implements GeneratedKeyStore {
  /** File name → its key, as read once. */
  private readonly read = new Map<string, Buffer>();

  constructor(private readonly directory: string) {}

  async load(): Promise<StoredKey[]> {
    const names = await readdir(this.directory).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [] as string[];
      throw err;
    });
    const keys: StoredKey[] = [];
    for (const name of names) {
      const createdAt = Number(KEY_FILE.exec(name)?.[1]);
      if (!Number.isSafeInteger(createdAt)) continue;
      let pem = this.read.get(name);
      if (!pem) this.read.set(name, (pem = await readFile(join(this.directory, name))));
      keys.push({ createdAt, pem });
    }
    return keys;
  }

  async find(): Promise<StoredKey | undefined> {
    return undefined; // only this process adds keys here: load has them all
  }

  async save(key: StoredKey): Promise<void> {
    const file = join(this.directory, `${key.createdAt}.pem`);
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    const temp = `${file}.tmp`;
    await writeFile(temp, key.pem, { mode: 0o600 });
    await rename(temp, file);
  }

  async remove(createdAt: number): Promise<void> {
    this.read.delete(`${createdAt}.pem`);
    await rm(join(this.directory, `${createdAt}.pem`), { force: true });
  }

  readyToAdd(): boolean {
    return true;
  }
}
