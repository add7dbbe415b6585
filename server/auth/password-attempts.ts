import type { IncomingMessage } from "node:http";
import ipaddr from "ipaddr.js";
import proxyAddr from "proxy-addr";
import { RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";

/** Too many failed password attempts from a client, or for an account: refused before any bcrypt work. */
export class TooManyPasswordAttempts extends Error {
  constructor(
    readonly retryAfterSeconds: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Counters that expire a window after their first point; RateLimiterMemory here, a shared
 * store (RateLimiterRedis) when replicas must share the budgets.
 */
export interface PasswordAttemptStores {
  /** Failed (and in-flight) password attempts per client; `points` = the per-client budget. */
  byClient: RateLimiterAbstract;
  /** The same per username, from clients not proven for it; `points` = the per-account budget. */
  byAccount: RateLimiterAbstract;
  /** `username + client` pairs that logged in successfully lately; only `set`, `get` are used. */
  proven: RateLimiterAbstract;
}

export interface PasswordAttemptOptions {
  /** Proxies (addresses, CIDRs, `loopback`...) whose `X-Forwarded-For` names the client. */
  trustedProxies: readonly string[];
  /** How long a successful login exempts its client from the account's budget. */
  provenForSeconds: number;
}

/** One password check under way: a success gives its attempt back; a failure keeps it counted. */
export interface PasswordAttempt {
  succeeded(): Promise<void>;
  /** The check was never made (no bcrypt thread was free): the attempt is given back. */
  abandoned(): Promise<void>;
}

/**
 * Budgets of password attempts, charged before bcrypt runs and given back when the password was
 * right. Per client, so one address cannot guess much; per account, so many addresses cannot
 * guess one account's password much either. A client that logged in as the account lately is
 * exempt from the account's budget: an attacker spending it cannot lock that account's real
 * users out. Unknown usernames are counted exactly like accounts, so the budgets reveal nothing.
 */
export class PasswordAttempts {
  private readonly trust: (address: string, hop: number) => boolean;

  constructor(
    private readonly stores: PasswordAttemptStores,
    private readonly options: PasswordAttemptOptions,
  ) {
    this.trust = proxyAddr.compile([...options.trustedProxies]);
  }

  /**
   * Who is charged for a request's attempts: its connection's address, or with trusted proxies
   * the nearest untrusted address of `X-Forwarded-For`. IPv6 clients are charged per /64, the
   * smallest block a host is usually given.
   */
  clientOf(request: IncomingMessage): string {
    if (request.socket.remoteAddress === undefined) return "unknown";
    const address = proxyAddr(request, this.trust);
    if (!ipaddr.isValid(address)) return address;
    const parsed = ipaddr.process(address);
    if (parsed.kind() === "ipv4") return parsed.toString();
    return `${(parsed as ipaddr.IPv6).parts
      .slice(0, 4)
      .map((part) => part.toString(16))
      .join(":")}::/64`;
  }

  /** Charges an attempt to the client (and to the account, unless the client is proven for it); throws when a budget is spent. */
  async begin(client: string, username: string): Promise<PasswordAttempt> {
    await charge(this.stores.byClient, client, "from this client");
    const accountKey = JSON.stringify([username, client]);
    const proven = ((await this.stores.proven.get(accountKey))?.consumedPoints ?? 0) > 0;
    if (!proven) await charge(this.stores.byAccount, username, "for this account");
    const giveBack = async () => {
      await this.stores.byClient.reward(client, 1);
      if (!proven) await this.stores.byAccount.reward(username, 1);
    };
    return {
      succeeded: async () => {
        await giveBack();
        await this.stores.proven.set(accountKey, 1, this.options.provenForSeconds);
      },
      abandoned: giveBack,
    };
  }
}

async function charge(store: RateLimiterAbstract, key: string, whose: string): Promise<void> {
  try {
    await store.consume(key, 1);
  } catch (err) {
    if (!(err instanceof RateLimiterRes)) throw err;
    const retryAfterSeconds = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
    throw new TooManyPasswordAttempts(retryAfterSeconds, `too many failed password attempts ${whose}; try again in ${retryAfterSeconds} s`);
  }
}
