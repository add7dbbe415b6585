import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

/** What an IP address reaches, for deciding where an upstream may send berth. */
export type AddressClass =
  /** Routable on the internet. */
  | "public"
  /** 127.0.0.0/8, ::1: this host's own network namespace (berth's ports, the kubelet's). */
  | "loopback"
  /** 169.254.0.0/16, fe80::/10: this link; the cloud metadata service answers at 169.254.169.254. */
  | "link-local"
  /** 10/8, 172.16/12, 192.168/16, fc00::/7 (and the deprecated site-local fec0::/10). */
  | "private"
  /** 100.64.0.0/10, carrier-grade NAT space; some clusters and VPNs number their nodes from it. */
  | "shared"
  /** Unspecified (0.0.0.0/8, ::), broadcast, multicast, documentation and reserved ranges, and IPv6 forms that carry another address (6to4, Teredo, IPv4-compatible). */
  | "special";

/** The well-known NAT64 prefix 64:ff9b::/96 (RFC 6052): DNS64 clusters reach public IPv4 hosts through it. */
const NAT64 = ipaddr.IPv6.parse("64:ff9b::");

/** Classifies a literal IP address (as DNS answers or a URL's host give it); anything else is "special". */
export function classifyAddress(address: string): AddressClass {
  if (isIP(address) === 0) return "special";
  const parsed = canonicalAddress(address);
  if (parsed.kind() === "ipv4") {
    switch ((parsed as ipaddr.IPv4).range()) {
      case "unicast":
        return "public";
      case "loopback":
        return "loopback";
      case "linkLocal":
        return "link-local";
      case "private":
        return "private";
      case "carrierGradeNat":
        return "shared";
      default:
        return "special";
    }
  }
  const v6 = parsed as ipaddr.IPv6;
  if (v6.match(NAT64, 96)) return classifyAddress(ipaddr.fromByteArray(v6.toByteArray().slice(12)).toString());
  // ::/96 (IPv4-compatible, deprecated) is not in ipaddr.js's special ranges: it would pass as unicast.
  if (v6.parts.slice(0, 6).every((part) => part === 0)) return v6.range() === "loopback" ? "loopback" : "special";
  const range: string = v6.range();
  switch (range) {
    case "unicast":
      return "public";
    case "loopback":
      return "loopback";
    case "linkLocal":
      return "link-local";
    case "uniqueLocal":
    case "deprecatedSiteLocal":
      return "private";
    default:
      return "special";
  }
}

/** The address in one spelling: IPv4-mapped IPv6 (`::ffff:127.0.0.1`) as IPv4, IPv6 compressed. */
export function canonicalAddress(address: string): ipaddr.IPv4 | ipaddr.IPv6 {
  return ipaddr.process(address);
}

/** Whether two literal addresses are the same host address, whatever their spelling. */
export function sameAddress(a: string, b: string): boolean {
  if (isIP(a) === 0 || isIP(b) === 0) return false;
  return canonicalAddress(a).toNormalizedString() === canonicalAddress(b).toNormalizedString();
}
