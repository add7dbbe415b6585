import { setTimeout as sleep } from "node:timers/promises";
import type { AccessLogEntry } from "../test/support/access-log.js";
import type { OriginRegistry } from "../test/support/origin-registry.js";

/** The origin's access log once a request that just ended has had time to be logged. */
export async function settledAccessLog(origin: OriginRegistry): Promise<AccessLogEntry[]> {
  let entries = await origin.accessLog();
  for (let attempt = 0; attempt < 20; attempt++) {
    await sleep(250);
    const again = await origin.accessLog();
    if (again.length === entries.length) return again;
    entries = again;
  }
  return entries;
}

/** The GETs of blobs the origin answered since its log held `since` entries: how many, and their bytes. */
export async function originBlobGets(origin: OriginRegistry, since: number, digests?: string[]): Promise<{ gets: number; bytes: number }> {
  const fetches = (await settledAccessLog(origin))
    .slice(since)
    .filter((e) => e.method === "GET" && e.status === 200 && /\/blobs\/sha256:[0-9a-f]{64}$/.test(e.path) && (!digests || digests.some((d) => e.path.endsWith(d))));
  return { gets: fetches.length, bytes: fetches.reduce((sum, e) => sum + e.bytes, 0) };
}
