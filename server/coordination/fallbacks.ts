/** A shared feature that falls back to what one process can do while Redis cannot be asked. */
export type SharedFeature = "object-index" | "upstream-backoff" | "tag-lists" | "manifest-lookups";

/**
 * How often each shared feature ran on this replica alone because Redis could not be asked (a
 * command failed, or Redis was known to be down): for /metrics and /ui, which say what a
 * degraded replica is doing differently.
 */
export class Fallbacks {
  private readonly counts = new Map<SharedFeature, number>();

  count(feature: SharedFeature): void {
    this.counts.set(feature, (this.counts.get(feature) ?? 0) + 1);
  }

  snapshot(): ReadonlyMap<SharedFeature, number> {
    return this.counts;
  }
}
