import NodeCache from "node-cache";

/** How long an upstream's tag list is answered from the cache. */
export const TAG_LIST_TTL_MS = 30_000;

/** Upstream tag lists lately fetched, by requester and upstream repository. */
export interface TagListCache {
  get(key: string): Promise<string[] | undefined>;
  set(key: string, tags: string[]): Promise<void>;
  close(): void;
}

/** The tag lists one process fetched, in memory for TAG_LIST_TTL_MS (or `ttlMs`) each. */
export class LocalTagListCache implements TagListCache {
  private readonly cache = new NodeCache({ stdTTL: TAG_LIST_TTL_MS / 1000, useClones: false, checkperiod: 0 });

  async get(key: string): Promise<string[] | undefined> {
    return this.cache.get<string[]>(key);
  }

  async set(key: string, tags: string[], ttlMs = TAG_LIST_TTL_MS): Promise<void> {
    this.cache.set(key, tags, ttlMs / 1000);
  }

  close(): void {
    this.cache.close();
  }
}
