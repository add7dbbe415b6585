/** What the index knows of an object. */
export interface IndexedObject {
  size: number;
  modified: Date;
}

/**
 * What a process knows of the objects in its bucket, so that request paths never list the
 * bucket (listings may lag writes) and warm reads cost no request: which keys exist (from one
 * walk at start and every write and delete since), the bytes of small objects lately read or
 * written, and keys found absent. `present` and `absent` record this process's own writes and
 * deletes; `answered` and `listed` what the store said, to a request sent after a `mark`: an
 * answer is dropped when the object changed meanwhile, so a read racing a write never leaves
 * the older bytes behind. LocalObjectIndex is correct while one process writes the bucket;
 * SharedObjectIndex when several do.
 */
export interface ObjectIndex {
  /**
   * Resolves once the index knows every change another process was told of before this call
   * (a write or delete whose response a client may already hold): read it after this, not before.
   */
  caughtUp(): Promise<void>;
  /** The object at path, "absent" when known not to exist, undefined when unknown (ask the store). */
  lookup(path: string): IndexedObject | "absent" | undefined;
  /** The bytes of a small object, when held. */
  content(path: string): Buffer | undefined;
  /**
   * Records an object this process wrote at path, with its bytes when small; resolves once the
   * other processes sharing the bucket were told (never rejects).
   */
  present(path: string, info: IndexedObject, content?: Buffer): Promise<void>;
  /** Records that this process deleted path; resolves once the others were told (never rejects). */
  absent(path: string): Promise<void>;
  /** Where the index stands now: take it before asking the store, and pass it with the answer. */
  mark(): number;
  /**
   * Records the store's answer about path (HEAD or GET: the object, with its bytes when small,
   * or undefined for a 404) to a request sent after `since`; false when path changed since
   * (the answer may be older than what the index knows, and is not recorded).
   */
  answered(path: string, found: IndexedObject | undefined, since: number, content?: Buffer): boolean;
  /**
   * Records an object a listing begun after `since` showed, unless the index knows path
   * otherwise (listings lag writes and deletes); true when it was added.
   */
  listed(path: string, info: IndexedObject, since: number): boolean;
  /**
   * Called each time changes other processes made may have gone unheard and the index hears
   * them again: what they wrote meanwhile is known only from a walk of the bucket (`listed`).
   */
  onGapClosed(listener: () => void): void;
  /** Names directly under a prefix: objects and sub-prefixes. */
  children(prefix: string): string[];
  /** Paths of every object under a prefix (the prefix itself included, when it is an object). */
  under(prefix: string): string[];
}

export interface LocalObjectIndexOptions {
  /** Objects up to this size keep their bytes in memory. */
  maxContentBytes?: number;
  /** Total bytes of object contents kept. */
  contentCacheBytes?: number;
  /** Keys remembered as absent. */
  maxAbsent?: number;
  /** Changes remembered to tell an answer from before a change; older marks count as before every change. */
  maxChanges?: number;
}

const DONE = Promise.resolve();

/** The single-process ObjectIndex, in memory (and the memory of SharedObjectIndex). */
export class LocalObjectIndex implements ObjectIndex {
  private readonly objects = new Map<string, IndexedObject>();
  /** Prefix → names directly under it. */
  private readonly tree = new Map<string, Set<string>>();
  private readonly absentKeys = new Map<string, true>();
  /** Least recently used first. */
  private readonly contents = new Map<string, Buffer>();
  private contentBytes = 0;
  private readonly maxContentBytes: number;
  private readonly contentCacheBytes: number;
  private readonly maxAbsent: number;
  /** Grows with every mark and every change. */
  private sequence = 0;
  /** Path → the sequence number of its last change, oldest first. */
  private readonly changes = new Map<string, number>();
  /** Changes up to this sequence number are forgotten. */
  private forgottenThrough = 0;
  private readonly maxChanges: number;

  constructor(options: LocalObjectIndexOptions = {}) {
    this.maxContentBytes = options.maxContentBytes ?? 256 * 1024;
    this.contentCacheBytes = options.contentCacheBytes ?? 64 * 1024 * 1024;
    this.maxAbsent = options.maxAbsent ?? 100_000;
    this.maxChanges = options.maxChanges ?? 100_000;
  }

  get size(): number {
    return this.objects.size;
  }

  caughtUp(): Promise<void> {
    return DONE; // one process writing the bucket knows its changes as it makes them
  }

  lookup(path: string): IndexedObject | "absent" | undefined {
    const info = this.objects.get(path);
    if (info) return info;
    return this.absentKeys.has(path) ? "absent" : undefined;
  }

  content(path: string): Buffer | undefined {
    const bytes = this.contents.get(path);
    if (bytes) {
      this.contents.delete(path);
      this.contents.set(path, bytes);
    }
    return bytes;
  }

  present(path: string, info: IndexedObject, content?: Buffer): Promise<void> {
    this.changed(path);
    this.record(path, info, content);
    return DONE;
  }

  absent(path: string): Promise<void> {
    this.changed(path);
    this.forget(path);
    return DONE;
  }

  /** Records what another process wrote (info) or deleted (undefined) at path; answers sent before are dropped. */
  changedElsewhere(path: string, info: IndexedObject | undefined): void {
    this.changed(path);
    if (info) this.record(path, info);
    else this.forget(path);
  }

  /**
   * Forgets what another process may have changed unseen: keys known absent and the bytes held
   * (both are only ever served from memory); answers to requests sent before are dropped. Which
   * keys exist stays: a read of one that is gone asks the store, and learns it.
   */
  forgetUnconfirmed(): void {
    this.absentKeys.clear();
    this.contents.clear();
    this.contentBytes = 0;
    this.forgottenThrough = ++this.sequence;
  }

  mark(): number {
    return ++this.sequence;
  }

  answered(path: string, found: IndexedObject | undefined, since: number, content?: Buffer): boolean {
    if (this.changedSince(path, since)) return false;
    if (found) this.record(path, found, content);
    else this.forget(path);
    return true;
  }

  listed(path: string, info: IndexedObject, since: number): boolean {
    if (this.objects.has(path) || this.absentKeys.has(path) || this.changedSince(path, since)) return false;
    this.record(path, info);
    return true;
  }

  onGapClosed(): void {
    // One process writing the bucket misses nothing.
  }

  children(prefix: string): string[] {
    return [...(this.tree.get(prefix) ?? [])];
  }

  under(prefix: string): string[] {
    const found: string[] = [];
    const visit = (path: string) => {
      if (this.objects.has(path)) found.push(path);
      for (const name of this.tree.get(path) ?? []) visit(path === "" ? name : `${path}/${name}`);
    };
    visit(prefix);
    return found;
  }

  /** Notes that path changed now: answers to requests sent before are dropped. */
  private changed(path: string): void {
    this.changes.delete(path);
    this.changes.set(path, ++this.sequence);
    if (this.changes.size <= this.maxChanges) return;
    const [oldest, at] = this.changes.entries().next().value!;
    this.changes.delete(oldest);
    this.forgottenThrough = Math.max(this.forgottenThrough, at);
  }

  private changedSince(path: string, since: number): boolean {
    return since < this.forgottenThrough || (this.changes.get(path) ?? 0) > since;
  }

  private record(path: string, info: IndexedObject, content?: Buffer): void {
    this.absentKeys.delete(path);
    const had = this.objects.has(path);
    this.objects.set(path, info);
    this.dropContent(path);
    if (content && content.length <= this.maxContentBytes && content.length === info.size) {
      this.contents.set(path, content);
      this.contentBytes += content.length;
      for (const [key, bytes] of this.contents) {
        if (this.contentBytes <= this.contentCacheBytes) break;
        this.contents.delete(key);
        this.contentBytes -= bytes.length;
      }
    }
    if (had) return;
    const segments = path.split("/");
    for (let i = segments.length - 1; i >= 0; i--) {
      const parent = segments.slice(0, i).join("/");
      let names = this.tree.get(parent);
      if (!names) this.tree.set(parent, (names = new Set()));
      if (names.has(segments[i])) break;
      names.add(segments[i]);
    }
  }

  private forget(path: string): void {
    this.dropContent(path);
    if (this.objects.delete(path)) this.unlink(path);
    this.absentKeys.delete(path);
    this.absentKeys.set(path, true);
    if (this.absentKeys.size > this.maxAbsent) this.absentKeys.delete(this.absentKeys.keys().next().value!);
  }

  private dropContent(path: string): void {
    const bytes = this.contents.get(path);
    if (!bytes) return;
    this.contents.delete(path);
    this.contentBytes -= bytes.length;
  }

  /** Removes path's name from its parent, and parents left empty from theirs. */
  private unlink(path: string): void {
    for (let current = path; current !== ""; ) {
      if (this.objects.has(current) || (this.tree.get(current)?.size ?? 0) > 0) return;
      this.tree.delete(current);
      const slash = current.lastIndexOf("/");
      const parent = slash < 0 ? "" : current.slice(0, slash);
      const names = this.tree.get(parent);
      names?.delete(current.slice(slash + 1));
      current = parent;
      if (parent === "" && names?.size === 0) this.tree.delete("");
    }
  }
}
