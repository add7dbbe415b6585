import bcrypt from "bcryptjs";
import type { Principal, PrincipalRole } from "./access.js";

export interface AccountConfig {
  username: string;
  passwordHash: string;
  tenant?: string;
}

interface Account {
  principal: Principal;
  passwordHash: string;
}

/** Compared against when the username is unknown, so a miss costs as much as a wrong password. */
const UNKNOWN_USER_HASH = "$2b$10$ihQOSnQw5rp60ffVKdRi3OhbHYQozmsOpE50edb/2pntc6EOPTqkG";

/** The static accounts of the configuration: users and node credentials, with bcrypt passwords. */
export class Accounts {
  private readonly byName = new Map<string, Account>();

  constructor(users: readonly AccountConfig[], nodes: readonly AccountConfig[]) {
    const add = (config: AccountConfig, role: PrincipalRole) => {
      const principal: Principal = { subject: config.username, role, ...(config.tenant ? { tenant: config.tenant } : {}) };
      this.byName.set(config.username, { principal, passwordHash: config.passwordHash });
    };
    for (const user of users) add(user, "user");
    for (const node of nodes) add(node, "node");
  }

  /** The account's principal when the password matches its hash; undefined otherwise. */
  async authenticate(username: string, password: string): Promise<Principal | undefined> {
    const account = this.byName.get(username);
    const matches = await bcrypt.compare(password, account?.passwordHash ?? UNKNOWN_USER_HASH);
    return matches && account ? account.principal : undefined;
  }

  /** Whether a subject is still a configured account (a refresh token outlives no account). */
  has(subject: string): boolean {
    return this.byName.has(subject);
  }
}
