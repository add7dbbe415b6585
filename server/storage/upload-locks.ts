import { KeyedLock } from "../concurrency/keyed-lock.js";

/** What a task holding an upload session checks before each write that must not outlive its hold. */
export interface HeldSession {
  /**
   * Resolves when the task still holds the session and will for a while (long enough for a
   * small write); throws StorageUnavailableError when another process may have taken it over.
   */
  confirm(): Promise<void>;
}

/**
 * Who may change an upload session at a time: one task per session, in this process alone
 * or in every replica sharing the store. An upload store runs each append, completion and
 * cancellation of a session under it.
 */
export interface UploadLocks {
  /** Runs `task` once no other task holds session `id`, and holds it until `task` settles. */
  run<T>(id: string, task: (held: HeldSession) => Promise<T>): Promise<T>;
  /** True when other processes change sessions too: a session's record must be read from the store itself. */
  readonly shared: boolean;
  /** Resolves once no task runs or waits in this process. */
  settled(): Promise<void>;
}

/** Sessions changed by this process alone (the default). */
export class ProcessUploadLocks implements UploadLocks {
  readonly shared = false;
  private readonly lock = new KeyedLock();

  run<T>(id: string, task: (held: HeldSession) => Promise<T>): Promise<T> {
    return this.lock.run(id, () => task(HELD));
  }

  settled(): Promise<void> {
    return this.lock.settled();
  }
}

const HELD: HeldSession = { confirm: async () => {} };
