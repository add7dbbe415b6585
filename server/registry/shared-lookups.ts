import { setTimeout as delay } from "node:timers/promises";
import { ELSEWHERE, type ClusterLookups } from "./cluster-lookups.js";
import type { Fallbacks } from "../coordination/fallbacks.js";
import type { Leases } from "../coordination/leases.js";

/** A lookup's lease lives this long unless renewed: how long waiters stall when its replica dies. */
const LEASE_TTL_MS = 10_000;
/** How often a waiter looks whether the lookup ended. */
const POLL_MS = 50;
/** Longest wait for another replica's lookup before running it here too. */
const MAX_WAIT_MS = 120_000;

/**
 * Lookups coalesced across replicas with a lease per lookup (`lookup:<key>`): its holder asks
 * the upstream and stores the answer; the others wait until the lease is gone (released, or
 * expired with a replica that died) and read the store. While Redis cannot be asked every
 * replica looks up on its own.
 */
export class SharedLookups implements ClusterLookups {
  constructor(
    private readonly leases: Leases,
    private readonly fallbacks: Fallbacks,
  ) {}

  async run<T>(key: string, lookup: () => Promise<T>): Promise<T | typeof ELSEWHERE> {
    const name = `lookup:${key}`;
    let lease;
    try {
      lease = await this.leases.acquire(name, LEASE_TTL_MS);
    } catch {
      this.fallbacks.count("manifest-lookups");
      return lookup();
    }
    if (!lease) return this.waitFor(name, lookup);
    lease.keepAlive(LEASE_TTL_MS, () => {});
    try {
      return await lookup();
    } finally {
      await lease.release();
    }
  }

  private async waitFor<T>(name: string, lookup: () => Promise<T>): Promise<T | typeof ELSEWHERE> {
    const deadline = Date.now() + MAX_WAIT_MS;
    while (Date.now() < deadline) {
      await delay(POLL_MS);
      try {
        if (!(await this.leases.holder(name))) return ELSEWHERE;
      } catch {
        this.fallbacks.count("manifest-lookups");
        return lookup();
      }
    }
    return lookup();
  }
}
