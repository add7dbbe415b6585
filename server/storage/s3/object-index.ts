/** What the index knows of an object. */
export interface IndexedObject {
  size: number;
  modified: Date;
}

/**
 * What a process knows of the objects in its bucket, so that request paths never list the
 * bucket (listings may lag writes) and warm reads cost no request: which keys exist (from one
 * walk at start and every write and delete since), the bytes of small objects lately read or
 * written, and keys found absent. Correct while one process writes the bucket; a shared
 * implementation takes its place when several do.
 */
export interface ObjectIndex {
  /** The object at path, "absent" when known not to exist, undefined when unknown (ask the store). */
  lookup(path: string): IndexedObject | "absent" | undefined;
  /** The bytes of a small object, when held. */
  content(path: string): Buffer | undefined;
  /** Records an object at path (written, read or listed), with its bytes when small. */
  present(path: string, info: IndexedObject, content?: Buffer): void;
  /** Records that path holds no object (deleted, or a 404). */
  absent(path: string): void;
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
}

/** The single-process ObjectIndex, in memory. */
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

  constructor(options: LocalObjectIndexOptions = {}) {
    this.maxContentBytes = options.maxContentBytes ?? 256 * 1024;
    this.contentCacheBytes = options.contentCacheBytes ?? 64 * 1024 * 1024;
    this.maxAbsent = options.maxAbsent ?? 100_000;
  }

  get size(): number {
    return this.objects.size;
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

  present(path: string, info: IndexedObject, content?: Buffer): void {
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

  absent(path: string): void {
    this.dropContent(path);
    if (this.objects.delete(path)) this.unlink(path);
    this.absentKeys.delete(path);
    this.absentKeys.set(path, true);
    if (this.absentKeys.size > this.maxAbsent) this.absentKeys.delete(this.absentKeys.keys().next().value!);
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
