/**
 * Whether S3 answers: failing once a request has failed every attempt, healthy again at the
 * next success. Readiness reads this state and never waits on S3 itself, so a slow store
 * keeps berth ready while a failing one makes it unready.
 */
export class S3Health {
  private failure?: { at: number; error: Error };

  succeeded(): void {
    this.failure = undefined;
  }

  failed(error: Error): void {
    this.failure = { at: Date.now(), error };
  }

  /** The last failure, while no request has succeeded since. */
  get failing(): { at: number; error: Error } | undefined {
    return this.failure;
  }
}
