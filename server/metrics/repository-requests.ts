/**
 * Requests per repository, for the status page's busiest list. Bounded: once it knows `limit`
 * names it counts only those, so clients inventing names cannot grow it without end.
 */
export class RepositoryRequests {
  private readonly counts = new Map<string, number>();

  constructor(private readonly limit = 1000) {}

  add(repository: string): void {
    const count = this.counts.get(repository);
    if (count !== undefined) this.counts.set(repository, count + 1);
    else if (this.counts.size < this.limit) this.counts.set(repository, 1);
  }

  top(n: number): { repository: string; requests: number }[] {
    return [...this.counts]
      .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
      .slice(0, n)
      .map(([repository, requests]) => ({ repository, requests }));
  }
}
