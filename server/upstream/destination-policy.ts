import { promises as dns, type LookupAddress } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { buildConnector } from "undici";
import { classifyAddress, sameAddress, type AddressClass } from "./address-class.js";

/** Every address of a host name; rejects when it has none. */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

const systemResolver: Resolver = (hostname) => dns.lookup(hostname, { all: true, verbatim: true });

/** A destination berth will not go to. `refusal` names it for berth's client ("a loopback address"): no address, no path. */
export class RefusedDestination extends Error {
  constructor(
    readonly refusal: string,
    detail: string,
  ) {
    super(detail);
  }
}

const CLASS_NAMES: Record<Exclude<AddressClass, "public">, string> = {
  loopback: "a loopback address",
  "link-local": "a link-local address",
  private: "a private address",
  shared: "a shared (carrier-grade NAT) address",
  special: "a special-purpose address",
};

/**
 * Where an upstream may send berth (a redirect, a token realm). Its own origin (scheme, host and
 * port of its configured url): always. Anywhere else: http or https only, no credentials in the
 * URL, never from https down to http, and only to a host whose every address is public, or in
 * the private (or shared) range the upstream itself lives in, or, for loopback and link-local,
 * the upstream's very own address (its token service on another port), because other loopback
 * and link-local addresses are this node's own services and the cloud metadata service.
 *
 * Addresses are checked where the connection is made (`connector`): the socket connects to the
 * very addresses that were checked, so a DNS answer that changes after a check (rebinding)
 * cannot slip through, and a literal address in any spelling is checked as the URL parser
 * normalised it (`http://2130706433/` is 127.0.0.1).
 */
export class DestinationPolicy {
  private readonly upstream: URL;

  constructor(
    upstreamUrl: string,
    private readonly resolve: Resolver = systemResolver,
  ) {
    this.upstream = new URL(upstreamUrl);
  }

  isOwnOrigin(url: URL): boolean {
    return url.origin === this.upstream.origin;
  }

  /** Throws RefusedDestination unless berth may ask `to`, named by an answer from `from`; its addresses are the connector's to check. */
  checkUrl(to: URL, from: URL): void {
    if (this.isOwnOrigin(to)) return;
    const where = `${to.protocol}//${to.host}`;
    if (to.protocol !== "http:" && to.protocol !== "https:") throw new RefusedDestination(`a ${to.protocol} URL`, `${where}: neither http nor https`);
    if (to.username || to.password) throw new RefusedDestination("a URL carrying credentials", `${where}: the URL carries credentials`);
    if (to.protocol === "http:" && (from.protocol === "https:" || this.upstream.protocol === "https:")) {
      throw new RefusedDestination("plain http from https", `${where}: plain http, named by ${from.protocol}//${from.host} for an upstream at ${this.upstream.protocol}//${this.upstream.host}`);
    }
  }

  /** Throws RefusedDestination unless berth may connect to every one of `addresses`, those of `hostname`. */
  async checkAddresses(hostname: string, addresses: readonly string[]): Promise<void> {
    let own: string[] | undefined;
    for (const address of addresses) {
      const kind = classifyAddress(address);
      if (kind === "public") continue;
      own ??= await this.ownAddresses();
      if (admitted(kind, address, own)) continue;
      throw new RefusedDestination(CLASS_NAMES[kind], `${hostname} is at ${address}, ${CLASS_NAMES[kind]}; the upstream lives at ${own.join(", ") || "no address"}`);
    }
  }

  /** An undici connector that connects only where this policy admits: a literal host as it stands, a name through a lookup whose checked answer the socket then uses. */
  connector(options: buildConnector.BuildOptions): buildConnector.connector {
    const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
      this.resolve(hostname)
        .then(async (resolved) => {
          const addresses = resolved.filter((a) => !lookupOptions.family || a.family === lookupOptions.family);
          if (addresses.length === 0) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
          await this.checkAddresses(hostname, addresses.map((a) => a.address));
          if (lookupOptions.all) callback(null, addresses);
          else callback(null, addresses[0].address, addresses[0].family);
        })
        .catch((err: Error) => callback(err, ""));
    };
    const connect = buildConnector({ ...options, lookup });
    return (target, callback) => {
      if (isIP(target.hostname) === 0) return connect(target, callback);
      this.checkAddresses(target.hostname, [target.hostname]).then(
        () => connect(target, callback),
        (err: Error) => callback(err, null),
      );
    };
  }

  private async ownAddresses(): Promise<string[]> {
    const host = this.upstream.hostname.replace(/^\[(.*)\]$/, "$1");
    if (isIP(host) !== 0) return [host];
    return (await this.resolve(host).catch(() => [])).map((a) => a.address);
  }
}

function admitted(kind: Exclude<AddressClass, "public">, address: string, own: readonly string[]): boolean {
  switch (kind) {
    case "private":
    case "shared":
      return own.some((a) => classifyAddress(a) === kind);
    case "loopback":
    case "link-local":
      return own.some((a) => sameAddress(a, address));
    case "special":
      return false;
  }
}
