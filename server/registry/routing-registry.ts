import type { Digest } from "../reference/digest.js";
import { RegistryError } from "./errors.js";
import type { HostedRegistry } from "./hosted-registry.js";
import { ProxyRepository, type Mirror } from "./proxy.js";
import type { Registry, RepositoryAddress, RepositoryRoute } from "./registry.js";
import type { RepositoryMetadata } from "../storage/repository-metadata.js";

const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

/**
 * Sends each request to the repository that serves it (docs/design.md §2): the upstream named by
 * containerd's `?ns=`, else the upstream whose prefix starts the path, else a hosted
 * repository, else the default upstream for names no hosted repository has. Whichever way a
 * mirrored repository is reached, its policy name is `PREFIX/REPO`.
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

  async route(address: RepositoryAddress): Promise<RepositoryRoute> {
    if (address.namespace !== undefined) {
      const host = DOCKER_HUB_ALIASES.has(address.namespace) ? "docker.io" : address.namespace;
      const mirror = this.byHost.get(host);
      if (!mirror) throw new RegistryError("NAME_UNKNOWN", `berth mirrors no upstream ${address.namespace}`, { ns: address.namespace });
      const route = mirrored(mirror, address.name, address.name);
      return { ...route, scopeNames: unique([route.policyName, address.name]) };
    }
    const byPrefix = this.prefixMirror(address.name);
    if (byPrefix) return mirrored(byPrefix, address.name, address.name.slice(byPrefix.upstream.prefix.length + 1));
    if (this.defaultMirror && address.intent !== "write") {
      const scopeNames = this.policyNames(address.name);
      if (!(await this.isHosted(address.name))) return { ...mirrored(this.defaultMirror, address.name, address.name), scopeNames };
      return { ...(await this.hosted.route(address)), scopeNames };
    }
    return this.hosted.route(address);
  }

  /**
   * The policy names a repository named `name` without `?ns=` may have: its prefix's mirrored
   * repository, or itself and the default upstream's repository (which one depends on whether
   * a hosted repository has the name, which this does not ask).
   */
  policyNames(name: string): string[] {
    const byPrefix = this.prefixMirror(name);
    if (byPrefix) return [mirrored(byPrefix, name, name.slice(byPrefix.upstream.prefix.length + 1)).policyName];
    if (!this.defaultMirror) return [name];
    return unique([name, mirrored(this.defaultMirror, name, name).policyName]);
  }

  catalog(): Promise<string[]> {
    return this.hosted.catalog();
  }

  repositoriesHolding(digest: Digest): Promise<string[]> {
    return this.hosted.repositoriesHolding(digest);
  }

  private prefixMirror(name: string): Mirror | undefined {
    const slash = name.indexOf("/");
    return slash > 0 ? this.byPrefix.get(name.slice(0, slash)) : undefined;
  }

  private async isHosted(name: string): Promise<boolean> {
    return this.hostedMetadata.hasManifests(name);
  }
}

/** Docker Hub keeps official images under `library/`. */
function mirrored(mirror: Mirror, addressedName: string, upstreamName: string): RepositoryRoute {
  const normalised = mirror.upstream.isDockerHub && !upstreamName.includes("/") ? `library/${upstreamName}` : upstreamName;
  const policyName = `${mirror.upstream.prefix}/${normalised}`;
  return {
    policyName,
    scopeNames: unique([policyName, addressedName]),
    open: async (requestedBy) => new ProxyRepository(addressedName, normalised, mirror, mirror.requesterFor(requestedBy)),
  };
}

function unique(names: string[]): string[] {
  return [...new Set(names)];
}
