/** What ClusterLookups.run resolves to when another process ran the lookup: read what it stored. */
export const ELSEWHERE = Symbol("looked up elsewhere");

/**
 * Upstream lookups (a manifest by tag or digest) coalesced across the processes sharing a
 * store: one runs a lookup, the others wait for it to end and read what it stored.
 */
export interface ClusterLookups {
  /** Runs `lookup`, unless another process runs the same one: then waits until it ends and resolves ELSEWHERE. */
  run<T>(key: string, lookup: () => Promise<T>): Promise<T | typeof ELSEWHERE>;
}

/** A single process: every lookup is its own (it coalesces its own clients already). */
export class ProcessLookups implements ClusterLookups {
  run<T>(_key: string, lookup: () => Promise<T>): Promise<T> {
    return lookup();
  }
}
