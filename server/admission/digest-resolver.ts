import { setTimeout as delay } from "node:timers/promises";
import type { AccessController, Principal } from "../auth/access.js";
import type { Digest } from "../reference/digest.js";
import { IMAGE_MANIFEST_TYPES, INDEX_TYPES } from "../registry/media-types.js";
import type { Registry } from "../registry/registry.js";

/** Every manifest type, indexes first: a multi-arch tag resolves to its index, as a runtime's pull would. */
const ACCEPT_ANY_MANIFEST = [...INDEX_TYPES, ...IMAGE_MANIFEST_TYPES];

/**
 * Resolves tags to digests through berth's own registry layer, in-process, for the pod's
 * principal: policy must let it pull the repository, and a mirrored manifest is fetched with
 * its tenant's credentials and visibility by the same code that serves `/v2/`, so the pull
 * that follows admission finds it in the cache.
 */
export class DigestResolver {
  constructor(
    private readonly registry: Registry,
    private readonly access: AccessController,
    private readonly timeoutMs: number,
  ) {}

  /** The digest `name:tag` has at berth now, as `principal` may see it; rejects with the reason, or after the timeout. */
  async resolve(name: string, tag: string, principal: Principal): Promise<Digest> {
    const lookup = (async () => {
      const route = await this.registry.route({ name, intent: "read" });
      // The refusal names no digest and does not say whether the tag exists.
      if (!this.access.allows(principal, route.policyName, "pull")) throw new Error(`${principal.subject} may not pull ${name} (auth.policy)`);
      const repository = await route.open({
        subject: principal.subject,
        ...(principal.tenant ? { tenant: principal.tenant } : {}),
        mayPull: (policyName) => this.access.allows(principal, policyName, "pull"),
      });
      return (await repository.getManifest({ tag }, { accept: ACCEPT_ANY_MANIFEST })).digest;
    })().catch((err: unknown) => {
      throw new Error(reasonOf(err));
    });
    const timer = new AbortController();
    const timeout = delay(this.timeoutMs, undefined, { signal: timer.signal }).then(() => {
      throw new Error(`no answer within ${this.timeoutMs / 1000}s`);
    });
    try {
      return await Promise.race([lookup, timeout]);
    } finally {
      timer.abort();
      // The lookup goes on after a timeout and still caches what it fetched; only its outcome is dropped.
      timeout.catch(() => undefined);
      lookup.catch(() => undefined);
    }
  }
}

/** A registry error's message, with its cause when it has one ("unknown error" alone says nothing). */
function reasonOf(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const cause = err instanceof Error ? err.cause : undefined;
  return cause instanceof Error && cause.message !== "" ? `${message}: ${cause.message}` : message;
}
