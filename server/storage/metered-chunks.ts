import { SizeLimitError } from "./size-limit-error.js";

/**
 * A pipeline stage that passes chunks on while counting them, shows each to `observe` (a
 * hash), and fails with SizeLimitError past `limit` bytes.
 */
export class MeteredChunks {
  bytes = 0;

  constructor(
    private readonly limit: number | undefined,
    private readonly observe: (chunk: Buffer) => void,
  ) {}

  readonly stage = async function* (this: MeteredChunks, chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of chunks) {
      this.bytes += chunk.length;
      if (this.limit !== undefined && this.bytes > this.limit) throw new SizeLimitError(this.limit);
      this.observe(chunk);
      yield chunk;
    }
  }.bind(this);
}
