/** Daemons and temp dirs a scenario started, closed newest first however the scenario ends. */
export class OpenResources {
  private readonly resources: { close(): Promise<unknown> }[] = [];

  /** Remembers a started resource and returns it. */
  keep<T extends { close(): Promise<unknown> }>(resource: T): T {
    this.resources.push(resource);
    return resource;
  }

  /** Closes one resource early (a fresh cache per round). */
  async close(resource: { close(): Promise<unknown> }): Promise<void> {
    const index = this.resources.indexOf(resource);
    if (index >= 0) this.resources.splice(index, 1);
    await resource.close();
  }

  async closeAll(): Promise<void> {
    const errors: unknown[] = [];
    for (const resource of this.resources.splice(0).reverse()) {
      await resource.close().catch((err: unknown) => errors.push(err));
    }
    if (errors.length > 0) throw errors[0];
  }
}
