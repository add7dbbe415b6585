import { createHash, createHmac, randomBytes } from "node:crypto";
import type { Principal, PrincipalRole } from "./access.js";

export interface AccountConfig {
  username: string;
  passwordHash: string;
  tenant?: string;
}

/** Checks passwords against bcrypt hashes and makes hashes; BcryptPool does it off the event loop. */
export interface PasswordHasher {
  compare(password: string, hash: string): Promise<boolean>;
  hash(password: string, cost: number): Promise<string>;
}

/** An account as configured now, with a fingerprint of what a refresh token issued to it must still match. */
export interface CurrentAccount {
  principal: Principal;
  /**
   * Truncated SHA-256 of the password hash, tenant and role (never the hash itself, which a
   * token's holder could read): changes when any of them does.
   */
  state: string;
}

interface Account extends CurrentAccount {
  passwordHash: string;
}

/** The bcrypt cost of a hash: the `NN` of `$2b$NN$`. */
export function bcryptCost(hash: string): number {
  const match = /^\$2[aby]\$(\d\d)\$/.exec(hash);
  if (!match) throw new Error("not a bcrypt hash");
  return Number(match[1]);
}

/** What `htpasswd -B` writes; the cost of unknown users when no account is configured. */
const HTPASSWD_COST = 5;

/** The static accounts of the configuration: users and node credentials, with bcrypt passwords. */
export class Accounts {
  private constructor(
    private readonly byName: ReadonlyMap<string, Account>,
    private readonly hasher: PasswordHasher,
    /** One hash of a random password per configured cost, weighted by how many accounts have it. */
    private readonly unknownUserHashes: readonly string[],
    private readonly unknownUserKey: Buffer,
  ) {}

  static async open(users: readonly AccountConfig[], nodes: readonly AccountConfig[], hasher: PasswordHasher): Promise<Accounts> {
    const byName = new Map<string, Account>();
    const add = (config: AccountConfig, role: PrincipalRole) => {
      const principal: Principal = { subject: config.username, role, ...(config.tenant ? { tenant: config.tenant } : {}) };
      const state = createHash("sha256")
        .update(JSON.stringify(["berth account state", config.passwordHash, config.tenant ?? null, role]))
        .digest("base64url")
        .slice(0, 22);
      byName.set(config.username, { principal, state, passwordHash: config.passwordHash });
    };
    for (const user of users) add(user, "user");
    for (const node of nodes) add(node, "node");

    const hashes = [...byName.values()].map((account) => account.passwordHash);
    const costs = hashes.length > 0 ? hashes.map(bcryptCost) : [HTPASSWD_COST];
    const dummies = new Map<number, string>();
    for (const cost of new Set(costs)) dummies.set(cost, await hasher.hash(randomBytes(18).toString("base64"), cost));
    // Keyed by the configured hashes: stable across restarts of one configuration, unknown to a client.
    const key = createHash("sha256").update("berth unknown-user cost").update([...hashes].sort().join("\n")).digest();
    return new Accounts(byName, hasher, costs.map((cost) => dummies.get(cost)!), key);
  }

  /** The account when the password matches its hash; undefined otherwise. */
  async authenticate(username: string, password: string): Promise<CurrentAccount | undefined> {
    const account = this.byName.get(username);
    const matches = await this.hasher.compare(password, account?.passwordHash ?? this.unknownUserHash(username));
    return matches && account ? { principal: account.principal, state: account.state } : undefined;
  }

  /** The account as configured now; undefined once it is removed (a refresh token outlives no account). */
  current(subject: string): CurrentAccount | undefined {
    const account = this.byName.get(subject);
    return account && { principal: account.principal, state: account.state };
  }

  /**
   * What a miss is compared against, so it costs what a wrong password does: with mixed costs,
   * each unknown name always gets the cost of one account, drawn by a keyed hash of the name as
   * often as the accounts have it, so its timing looks like some real account's.
   */
  private unknownUserHash(username: string): string {
    const draw = createHmac("sha256", this.unknownUserKey).update(username).digest().readUInt32BE(0);
    return this.unknownUserHashes[draw % this.unknownUserHashes.length];
  }
}
