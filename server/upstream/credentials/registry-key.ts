import { parseSchemeUrl, splitHostPort } from "./go-url.js";
import { hostLabelMatches } from "./host-glob.js";

/**
 * The keyring key for a credential location, as kubelet's `BasicDockerKeyring.Add` derives
 * it: `https://` is assumed when there is no http(s) scheme, the scheme is dropped, and a
 * path of `/`, `/v1/` or `/v2/` leaves the bare host (`https://index.docker.io/v1/` →
 * `index.docker.io`; `quay.io/v2/org` → `quay.io/org`). Undefined when Go's URL parser
 * rejects the location; kubelet ignores such an entry.
 */
export function credentialKey(location: string): string | undefined {
  const url = location.startsWith("https://") || location.startsWith("http://") ? location : `https://${location}`;
  const parsed = parseSchemeUrl(url);
  if (!parsed) return undefined;
  const path = parsed.path.startsWith("/v1/") || parsed.path.startsWith("/v2/") ? parsed.path.slice(3) : parsed.path;
  return path.length > 0 && path !== "/" ? parsed.host + path : parsed.host;
}

/**
 * kubelet's `URLsMatchStr(key, image)`: equal ports (no port in the key = no port in the
 * image), the same number of host labels, each label a glob, and the key's path a plain
 * string prefix of the image's path.
 */
export function keyMatchesImage(key: string, image: string): boolean {
  const glob = parseSchemeUrl(`https://${key}`);
  const target = parseSchemeUrl(`https://${image}`);
  if (!glob || !target) return false;
  const globHost = labelsAndPort(glob.host);
  const targetHost = labelsAndPort(target.host);
  if (globHost.port !== targetHost.port) return false;
  if (globHost.labels.length !== targetHost.labels.length) return false;
  if (!target.path.startsWith(glob.path)) return false;
  return globHost.labels.every((label, i) => hostLabelMatches(label, targetHost.labels[i]));
}

// Like kubelet's SplitURL: a host SplitHostPort rejects (e.g. no port) is all labels, port "".
function labelsAndPort(host: string): { labels: string[]; port: string } {
  const split = splitHostPort(host);
  return split ? { labels: split.host.split("."), port: split.port } : { labels: host.split("."), port: "" };
}
