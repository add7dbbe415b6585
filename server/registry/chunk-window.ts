/**
 * The most recent bytes of a transfer, as the chunks they arrived in, so that readers keeping
 * up with it are served from memory instead of reading back what was just written. Chunks are
 * shared with every reader and never changed. The window covers [start, end): it keeps at
 * least `capacity` bytes and every byte not yet durable, so bytes before `start` are always
 * on disk.
 */
export class ChunkWindow {
  private readonly chunks: Buffer[] = [];
  /** Offset of each chunk in the transfer, in step with `chunks`. */
  private readonly offsets: number[] = [];
  private first = 0;
  private bytes = 0;

  constructor(private readonly capacity: number) {}

  get start(): number {
    return this.first;
  }

  get end(): number {
    return this.first + this.bytes;
  }

  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.offsets.push(this.end);
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** Forgets the oldest chunks beyond capacity, but only those wholly before `durable`. */
  trim(durable: number): void {
    while (this.chunks.length > 0) {
      const oldest = this.chunks[0];
      if (this.bytes - oldest.length < this.capacity || this.first + oldest.length > durable) return;
      this.chunks.shift();
      this.offsets.shift();
      this.first += oldest.length;
      this.bytes -= oldest.length;
    }
  }

  /** Forgets every chunk: the whole transfer is durable. */
  clear(): void {
    this.first = this.end;
    this.bytes = 0;
    this.chunks.length = 0;
    this.offsets.length = 0;
  }

  /** The bytes from `position` (within the window) up to `limit` or the end of the chunk holding it, without copying. */
  view(position: number, limit: number): Buffer {
    const index = this.indexOf(position);
    const from = position - this.offsets[index];
    return this.chunks[index].subarray(from, Math.min(this.chunks[index].length, from + limit - position));
  }

  /** Copies the bytes from `position` (within the window) up to `limit` into `into`, as many as fit; returns how many. */
  copy(position: number, limit: number, into: Buffer): number {
    let copied = 0;
    for (let index = this.indexOf(position); index < this.chunks.length && copied < into.length && position + copied < limit; index++) {
      const from = position + copied - this.offsets[index];
      const upto = Math.min(this.chunks[index].length, from + limit - position - copied, from + into.length - copied);
      copied += this.chunks[index].copy(into, copied, from, upto);
    }
    return copied;
  }

  /** The chunk holding `position`. */
  private indexOf(position: number): number {
    let low = 0;
    let high = this.offsets.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.offsets[middle] <= position) low = middle;
      else high = middle - 1;
    }
    return low;
  }
}
