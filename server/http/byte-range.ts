import type { ByteRange } from "../storage/driver.js";

/**
 * Parses an HTTP `Range` header against a resource size (RFC 9110 §14). Returns undefined to
 * serve the whole resource (no header, or a form berth ignores such as several ranges),
 * "unsatisfiable" for a range that lies outside it or ends before it starts (`bytes=500-0`:
 * RFC 9110 lets a server reject it, and Distribution answers it 416 too).
 */
export function parseRangeHeader(header: string | undefined, size: number): ByteRange | "unsatisfiable" | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header);
  if (!match) return undefined;
  const [, first, last] = match;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start) || start >= size) return "unsatisfiable";
  // A last position past the end (however large) means the end.
  const end = last === "" ? size - 1 : Number(last);
  if (end < start) return "unsatisfiable";
  return { start, end: Math.min(end, size - 1) };
}

/** Parses an upload chunk's `Content-Range: <start>-<end>` (the distribution-spec form, `bytes ` prefix tolerated). */
export function parseContentRange(header: string | undefined): ByteRange | "invalid" | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*(?:bytes[ =])?\s*(\d+)-(\d+)(?:\/(?:\d+|\*))?\s*$/.exec(header);
  if (!match) return "invalid";
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return "invalid";
  return { start, end };
}
