import type { UpstreamConfig } from "../../config/upstream-schema.js";
import { DOCKER_HUB, type ImageReference } from "../reference/image-reference.js";

const DOCKER_HUB_ALIASES = new Set([DOCKER_HUB, "index.docker.io", "registry-1.docker.io"]);

/**
 * Which images berth serves, and under which name: an image of a mirrored registry is
 * `PREFIX/PATH` at berth (docs/design.md §2), an image that already names berth is `PATH`.
 */
export class ImageRouting {
  private readonly prefixes = new Map<string, string>();
  private readonly berthHost?: string;

  constructor(upstreams: readonly UpstreamConfig[], berthRegistry?: string) {
    for (const upstream of upstreams) this.prefixes.set(upstream.host.toLowerCase(), upstream.prefix);
    this.berthHost = berthRegistry?.toLowerCase();
  }

  /** The repository's name at berth, or undefined when berth neither mirrors nor is the image's registry. */
  berthName(reference: ImageReference): string | undefined {
    if (this.namesBerth(reference)) return reference.repository;
    const host = reference.host.toLowerCase();
    const prefix = this.prefixes.get(DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host);
    return prefix === undefined ? undefined : `${prefix}/${reference.repository}`;
  }

  /** True when the image already names berth's registry host. */
  namesBerth(reference: ImageReference): boolean {
    return this.berthHost !== undefined && reference.host.toLowerCase() === this.berthHost;
  }
}
