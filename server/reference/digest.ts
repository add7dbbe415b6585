import { createHash, type Hash } from "node:crypto";

export type DigestAlgorithm = "sha256" | "sha512";

const ENCODED_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_PATTERN = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** A content digest `algorithm:hex`, validated for the algorithms berth can verify. */
export class Digest {
  private constructor(
    readonly algorithm: DigestAlgorithm,
    readonly hex: string,
  ) {}

  /** Parses a digest string; returns undefined when it is malformed or its algorithm unsupported. */
  static parse(text: string): Digest | undefined {
    const match = DIGEST_PATTERN.exec(text);
    if (!match) return undefined;
    const algorithm = match[1] as DigestAlgorithm;
    if (!Object.hasOwn(ENCODED_LENGTH, algorithm)) return undefined;
    const expected = ENCODED_LENGTH[algorithm];
    if (match[2].length !== expected || !/^[a-f0-9]+$/.test(match[2])) return undefined;
    return new Digest(algorithm, match[2]);
  }

  /** True when text has the general digest shape, even if berth cannot verify its algorithm. */
  static looksLikeDigest(text: string): boolean {
    return DIGEST_PATTERN.test(text);
  }

  static of(algorithm: DigestAlgorithm, data: Buffer | string): Digest {
    return new Digest(algorithm, createHash(algorithm).update(data).digest("hex"));
  }

  static fromHash(algorithm: DigestAlgorithm, hash: Hash): Digest {
    return new Digest(algorithm, hash.digest("hex"));
  }

  equals(other: Digest): boolean {
    return this.algorithm === other.algorithm && this.hex === other.hex;
  }

  toString(): string {
    return `${this.algorithm}:${this.hex}`;
  }
}
