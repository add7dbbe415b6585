import { RegistryError } from "./errors.js";
import type { HostedRegistry } from "./hosted-registry.js";
import { ProxyRepository, type Mirror } from "./proxy.js";
import type { Registry, Repository, RepositoryAddress } from "./registry.js";
import type { RepositoryMetadata } from "../storage/repository-metadata.js";

const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

/**
 * Sends each request to the repository that serves it (docs/design.md §2): the upstream named by
 * containerd's `?ns=`, else the upstream whose prefix starts the path, else a hosted
 * repository, else the default upstream for names no hosted repository has.
 */
export class RoutingRegistry implements Registry {
  private readonly byHost = new Map<string, Mirror>();
  private readonly byPrefix = new Map<string, Mirror>();

  constructor(
    private readonly hosted: HostedRegistry,
    private readonly hostedMetadata: RepositoryMetadata,
    mirrors: Mirror[],
    private readonly defaultMirror?: Mirror,
  ) {
    for (const mirror of mirrors) {
      this.byHost.set(mirror.upstream.host, mirror);
      this.byPrefix.set(mirror.upstream.prefix, mirror);
    }
  }

  async repository(address: RepositoryAddress): Promise<Repository> {
    if (address.namespace !== undefined) {
      const host = DOCKER_HUB_ALIASES.has(address.namespace) ? "docker.io" : address.namespace;
      const mirror = this.byHost.get(host);
      if (!mirror) throw new RegistryError("NAME_UNKNOWN", `berth mirrors no upstream ${address.namespace}`, { ns: address.namespace });
      return proxied(mirror, address, address.name);
    }
    const slash = address.name.indexOf("/");
    const byPrefix = slash > 0 ? this.byPrefix.get(address.name.slice(0, slash)) : undefined;
    if (byPrefix) return proxied(byPrefix, address, address.name.slice(slash + 1));
    if (this.defaultMirror && address.intent !== "write" && !(await this.isHosted(address.name))) {
      return proxied(this.defaultMirror, address, address.name);
    }
    return this.hosted.repository(address);
  }

  catalog(): Promise<string[]> {
    return this.hosted.catalog();
  }

  private async isHosted(name: string): Promise<boolean> {
    return this.hostedMetadata.hasManifests(name);
  }
}

/** Docker Hub keeps official images under `library/`. */
function proxied(mirror: Mirror, address: RepositoryAddress, upstreamName: string): ProxyRepository {
  const normalised = mirror.upstream.isDockerHub && !upstreamName.includes("/") ? `library/${upstreamName}` : upstreamName;
  return new ProxyRepository(address.name, normalised, mirror, mirror.requesterFor(address.requestedBy));
}
