import { Digest } from "./digest.js";
import { isTag } from "./repository-name.js";

/** Where an image reference without a registry host is pulled from. */
export const DOCKER_HUB = "docker.io";
/** Docker Hub's legacy name, rewritten to `docker.io` (as the Docker reference library does). */
const LEGACY_DOCKER_HUB = "index.docker.io";
const OFFICIAL_REPOSITORY_PREFIX = "library/";
/** Longest name (host and path) the Docker reference library accepts. */
const MAX_NAME_LENGTH = 255;

// The Docker/Distribution reference grammar (github.com/distribution/reference).
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const HOST = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const IDENTIFIER = /^[a-f0-9]{64}$/;

/** A string that is not an image reference; the message says why, naming the reference. */
export class ImageReferenceError extends Error {}

/**
 * An image reference, `[host[:port]/]path[:tag][@digest]`, normalised as Kubernetes and
 * Docker do (docs/design.md §3): no host means `docker.io`, and Docker Hub's one-component names
 * get `library/`. The tag and digest are kept exactly as written, both absent when neither
 * was given.
 */
export class ImageReference {
  private constructor(
    /** Registry `host[:port]`: `docker.io` for Docker Hub. */
    readonly host: string,
    /** The repository's path at that registry: `library/nginx`. */
    readonly repository: string,
    readonly tag: string | undefined,
    readonly digest: Digest | undefined,
  ) {}

  static parse(text: string): ImageReference {
    const fail = (why: string) => new ImageReferenceError(`invalid image reference ${JSON.stringify(text)}: ${why}`);
    if (text === "") throw fail("it is empty");
    if (IDENTIFIER.test(text)) throw fail("a 64-character hexadecimal string is an image ID, not a repository name");

    let rest = text;
    let digest: Digest | undefined;
    const at = rest.indexOf("@");
    if (at >= 0) {
      const digestText = rest.slice(at + 1);
      digest = Digest.parse(digestText);
      if (!digest) throw fail(whyNotADigest(digestText));
      rest = rest.slice(0, at);
    }

    let tag: string | undefined;
    const colon = rest.lastIndexOf(":");
    if (colon > rest.lastIndexOf("/")) {
      tag = rest.slice(colon + 1);
      if (!isTag(tag)) throw fail(`${JSON.stringify(tag)} is not a tag (up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)`);
      rest = rest.slice(0, colon);
    }
    if (rest.length > MAX_NAME_LENGTH) throw fail(`the name is longer than ${MAX_NAME_LENGTH} characters`);

    const slash = rest.indexOf("/");
    const first = slash < 0 ? "" : rest.slice(0, slash);
    // The Docker rule: a first component is a registry host only if it looks like one.
    const hasHost = slash >= 0 && (/[.:]/.test(first) || first === "localhost" || first !== first.toLowerCase());
    let host = hasHost ? first : DOCKER_HUB;
    let path = hasHost ? rest.slice(slash + 1) : rest;
    if (hasHost && !HOST.test(host)) throw fail(`${JSON.stringify(host)} is not a registry host[:port]`);
    if (path === "") throw fail("it names no repository");
    for (const component of path.split("/")) {
      if (PATH_COMPONENT.test(component)) continue;
      if (PATH_COMPONENT.test(component.toLowerCase())) throw fail("repository names must be lowercase");
      throw fail(`${JSON.stringify(component)} is not a repository path component`);
    }
    if (host === LEGACY_DOCKER_HUB) host = DOCKER_HUB;
    if (host === DOCKER_HUB && !path.includes("/")) path = `${OFFICIAL_REPOSITORY_PREFIX}${path}`;
    return new ImageReference(host, path, tag, digest);
  }

  /** `host/repository`, the fully qualified name without tag or digest: `docker.io/library/nginx`. */
  get name(): string {
    return `${this.host}/${this.repository}`;
  }

  /** The tag a pull resolves: the one written, or `latest` when neither a tag nor a digest was. */
  get pullTag(): string | undefined {
    return this.tag ?? (this.digest ? undefined : "latest");
  }

  /** The reference with the digest a tag resolved to, keeping the tag as written. */
  pinned(digest: Digest): ImageReference {
    return new ImageReference(this.host, this.repository, this.tag, digest);
  }

  /** The same tag and digest under another registry host and path. */
  movedTo(host: string, repository: string): ImageReference {
    return new ImageReference(host, repository, this.tag, this.digest);
  }

  /** The normalised reference: `docker.io/library/nginx:1.25`, `ghcr.io/a/b@sha256:...`. */
  toString(): string {
    return `${this.name}${this.tag === undefined ? "" : `:${this.tag}`}${this.digest === undefined ? "" : `@${this.digest}`}`;
  }
}

function whyNotADigest(text: string): string {
  const algorithm = text.split(":")[0];
  if (algorithm === "sha256") return `${JSON.stringify(text)} is not a sha256 digest (64 lowercase hex characters)`;
  if (algorithm === "sha512") return `${JSON.stringify(text)} is not a sha512 digest (128 lowercase hex characters)`;
  if (Digest.looksLikeDigest(text)) return `berth verifies sha256 and sha512 digests, not ${algorithm}`;
  return `${JSON.stringify(text)} is not a digest (algorithm:hex)`;
}
