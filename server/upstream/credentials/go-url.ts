/**
 * The parts of Go's `net/url.Parse` and `net.SplitHostPort` that kubelet's keyring relies
 * on, reproduced so that a key or image is accepted, rejected and split exactly as the
 * kubelet does (e.g. a `?` ends the host, a `\` or `^` in a host is an error, a host
 * starting with `[` must be an IP literal).
 */

/** What kubelet reads from a parsed URL: `Host` (with any port) and the decoded `Path`. */
export interface HostAndPath {
  host: string;
  path: string;
}

/** `url.Parse` of `scheme://authority[/path][?query][#fragment]`; undefined where Go returns an error. */
export function parseSchemeUrl(raw: string): HostAndPath | undefined {
  const hashAt = raw.indexOf("#");
  const beforeFragment = hashAt < 0 ? raw : raw.slice(0, hashAt);
  if (hashAt >= 0 && unescape(raw.slice(hashAt + 1), "other") === undefined) return undefined;
  if (/[\x00-\x1f\x7f]/.test(beforeFragment)) return undefined;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(beforeFragment);
  if (!scheme) return undefined;
  const afterScheme = beforeFragment.slice(scheme[0].length);
  const queryAt = afterScheme.indexOf("?");
  const hierarchy = queryAt < 0 ? afterScheme : afterScheme.slice(0, queryAt);
  const slashAt = hierarchy.indexOf("/");
  const authority = slashAt < 0 ? hierarchy : hierarchy.slice(0, slashAt);
  const host = parseAuthority(authority);
  const path = unescape(slashAt < 0 ? "" : hierarchy.slice(slashAt), "other");
  if (host === undefined || path === undefined) return undefined;
  return { host, path };
}

/** `net.SplitHostPort`; undefined where Go returns an error (no port, stray brackets or colons). */
export function splitHostPort(hostport: string): { host: string; port: string } | undefined {
  const lastColon = hostport.lastIndexOf(":");
  if (lastColon < 0) return undefined;
  let host: string;
  let openFrom = 0;
  let closeFrom = 0;
  if (hostport.startsWith("[")) {
    const end = hostport.indexOf("]");
    if (end < 0 || end + 1 !== lastColon) return undefined;
    host = hostport.slice(1, end);
    openFrom = 1;
    closeFrom = end + 1;
  } else {
    host = hostport.slice(0, lastColon);
    if (host.includes(":")) return undefined;
  }
  if (hostport.indexOf("[", openFrom) >= 0 || hostport.indexOf("]", closeFrom) >= 0) return undefined;
  return { host, port: hostport.slice(lastColon + 1) };
}

function parseAuthority(authority: string): string | undefined {
  const at = authority.lastIndexOf("@");
  const host = parseHost(at < 0 ? authority : authority.slice(at + 1));
  if (at < 0 || host === undefined) return host;
  const userinfo = authority.slice(0, at);
  if (!/^[A-Za-z0-9\-._:~!$&'()*+,;=%@]*$/.test(userinfo)) return undefined;
  return userinfo.split(":").every((part) => unescape(part, "other") !== undefined) ? host : undefined;
}

function parseHost(host: string): string | undefined {
  if (host.startsWith("[")) {
    const close = host.lastIndexOf("]");
    if (close < 0 || !validOptionalPort(host.slice(close + 1))) return undefined;
    const zone = host.slice(0, close).indexOf("%25");
    if (zone >= 0) {
      const parts = [unescape(host.slice(0, zone), "host"), unescape(host.slice(zone, close), "zone"), unescape(host.slice(close), "host")];
      return parts.some((part) => part === undefined) ? undefined : parts.join("");
    }
  } else {
    const colon = host.lastIndexOf(":");
    if (colon >= 0 && !validOptionalPort(host.slice(colon))) return undefined;
  }
  return unescape(host, "host");
}

function validOptionalPort(colonPort: string): boolean {
  return colonPort === "" || /^:[0-9]*$/.test(colonPort);
}

type Mode = "host" | "zone" | "other";

/** Go's `unescape`: validates `%XX` escapes (and, in a host, its characters), then decodes them. */
function unescape(text: string, mode: Mode): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === "%") {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      const value = parseInt(hex, 16);
      const isPercent = hex === "25";
      // A host may %-encode only non-ASCII bytes; a zone only bytes it could hold unescaped.
      if (mode === "host" && value < 0x80 && !isPercent) return undefined;
      if (mode === "zone" && !isPercent && value !== 0x20 && (value >= 0x80 || !allowedInHost(String.fromCharCode(value)))) return undefined;
      bytes.push(value);
      i += 3;
      continue;
    }
    const code = text.codePointAt(i) as number;
    const character = String.fromCodePoint(code);
    if (mode !== "other" && code < 0x80 && !allowedInHost(character)) return undefined;
    bytes.push(...Buffer.from(character, "utf8"));
    i += character.length;
  }
  return Buffer.from(bytes).toString("utf8");
}

function allowedInHost(character: string): boolean {
  return /^[A-Za-z0-9!$&'()*+,;=:[\]<>"\-_.~]$/.test(character);
}
