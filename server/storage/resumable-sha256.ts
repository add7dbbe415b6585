import { createSHA256, type IHasher } from "hash-wasm";
import { Digest } from "../reference/digest.js";

/**
 * sha256 whose state is saved after every chunk of an upload and resumed by whichever process
 * receives the next one (node:crypto cannot export a hash's state): hash-wasm's WebAssembly
 * sha256. One hasher serves every running hash of the process, each keeping its own state
 * and loading it into the hasher when its turn comes, so a thousand uploads cost one hasher.
 */
export class ResumableSha256 {
  private loading?: Promise<IHasher>;
  private hasher?: IHasher;
  /** The running hash whose state the hasher holds now. */
  private holder?: RunningSha256;

  /** A running hash of no bytes yet. */
  async start(): Promise<RunningSha256> {
    const hasher = await this.ready();
    this.park();
    hasher.init();
    return this.hold(new RunningSha256(this));
  }

  /** Resumes a saved hash; undefined when the state is not one this berth can load (written by another hash-wasm). */
  async resume(saved: string): Promise<RunningSha256 | undefined> {
    const hasher = await this.ready();
    this.park();
    try {
      hasher.load(Buffer.from(saved, "base64"));
    } catch {
      return undefined;
    }
    return this.hold(new RunningSha256(this));
  }

  /** Runs `task` on the hasher loaded with `hash`'s state. */
  with<T>(hash: RunningSha256, task: (hasher: IHasher) => T): T {
    const hasher = this.hasher!;
    if (this.holder !== hash) {
      this.park();
      hasher.load(hash.state);
      this.holder = hash;
    }
    return task(hasher);
  }

  /** Its holder keeps the hasher's state; nobody holds the hasher. */
  private park(): void {
    if (this.holder) this.holder.state = this.hasher!.save();
    this.holder = undefined;
  }

  private hold(hash: RunningSha256): RunningSha256 {
    this.holder = hash;
    return hash;
  }

  private async ready(): Promise<IHasher> {
    this.loading ??= createSHA256();
    this.hasher = await this.loading;
    return this.hasher;
  }
}

/** One upload's sha256 so far. */
export class RunningSha256 {
  /** The hash's state while another holds the hasher. */
  state: Uint8Array = new Uint8Array();

  constructor(private readonly hashes: ResumableSha256) {}

  update(chunk: Buffer): void {
    this.hashes.with(this, (hasher) => hasher.update(chunk));
  }

  /** The state, to store beside the bytes it covers (base64). */
  save(): string {
    return Buffer.from(this.hashes.with(this, (hasher) => hasher.save())).toString("base64");
  }

  /** The digest of the bytes so far; the hash can go on. */
  digest(): Digest {
    return this.hashes.with(this, (hasher) => {
      const state = hasher.save();
      const hex = hasher.digest("hex");
      hasher.load(state);
      return Digest.parse(`sha256:${hex}`)!;
    });
  }
}
