import type { IncomingMessage } from "node:http";
import ipaddr from "ipaddr.js";
import proxyAddr from "proxy-addr";
import type { RateLimiterAbstract } from "rate-limiter-flexible";

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
  /** Failed password attempts per client; `points` = the per-client budget. */
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

/** One password check allowed to run: its outcome is recorded once known. */
export interface PasswordAttempt {
  succeeded(): Promise<void>;
  failed(): Promise<void>;
}

/**
 * Budgets of failed password attempts, checked before bcrypt runs. Per client, so one address
 * cannot guess much; per account, so many addresses cannot guess one account's password much
 * either. Only failures are charged: a client logging in with the right password, however often
 * or concurrently, is never refused for it (concurrency is BcryptPool's to bound). A client that
 * logged in as the account lately is exempt from the account's budget: an attacker spending it
 * cannot lock that account's real users out. Unknown usernames are counted exactly like
 * accounts, so the budgets reveal nothing.
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

  /** Lets an attempt run when neither the client's nor (unless the client is proven for it) the account's budget is spent. */
  async begin(client: string, username: string): Promise<PasswordAttempt> {
    await refuseWhenSpent(this.stores.byClient, client, "from this client");
    const provenKey = JSON.stringify([username, client]);
    const proven = ((await this.stores.proven.get(provenKey))?.consumedPoints ?? 0) > 0;
    if (!proven) await refuseWhenSpent(this.stores.byAccount, username, "for this account");
    return {
      succeeded: async () => {
        await this.stores.proven.set(provenKey, 1, this.options.provenForSeconds);
      },
      failed: async () => {
        await this.stores.byClient.penalty(client, 1);
        if (!proven) await this.stores.byAccount.penalty(username, 1);
      },
    };
  }
}

async function refuseWhenSpent(store: RateLimiterAbstract, key: string, whose: string): Promise<void> {
  const spent = await store.get(key);
  if (spent === null || spent.consumedPoints < store.points || spent.msBeforeNext <= 0) return;
  const retryAfterSeconds = Math.max(1, Math.ceil(spent.msBeforeNext / 1000));
  throw new TooManyPasswordAttempts(retryAfterSeconds, `too many failed password attempts ${whose}; try again in ${retryAfterSeconds} s`);
}
