import type { Dispatcher } from "undici";
import { Digest } from "../reference/digest.js";
import { guardProgress } from "./progress-guard.js";
import { UpstreamError } from "./upstream-error.js";

const MiB = 1024 * 1024;

/** The most berth reads of, or believes from, an upstream's answers; an answer beyond one is refused ("invalid"), never cut and used. */
export const LIMITS = {
  /** One manifest, as Distribution's own limit. */
  manifestBytes: 4 * MiB,
  /** One referrers index. */
  referrersBytes: 4 * MiB,
  /** One token response. */
  tokenBytes: 1 * MiB,
  /** A whole tag list, every page together. */
  tagListBytes: 16 * MiB,
  /** Pages of one tag list (`Link` pagination). */
  tagPages: 1000,
  /** Longest a token is reused, whatever its `expires_in` claims. */
  tokenSeconds: 3600,
  /** Redirects followed for one request. */
  redirects: 5,
};

/** How long a token without (or with a nonsensical) `expires_in` is reused. */
export const DEFAULT_TOKEN_SECONDS = 60;

/** An answer's body to read whole. */
export interface BoundedRead {
  /** Bytes berth reads at most. */
  limit: number;
  /** When several answers share one limit (a tag list's pages) and `limit` is what is left of it: that whole limit, named in the refusal. */
  whole?: number;
  /** What the answer is, for berth's client ("tag list"). */
  answer: string;
  /** The upstream and path, for the log. */
  what: string;
  /** The read timeout: the body must keep moving (progress-guard.ts). */
  windowMs: number;
}

/**
 * Reads a whole answer of at most `limit` bytes: a Content-Length above the limit is refused
 * before a byte is read, a longer body is cut the moment it passes the limit.
 */
export async function readBounded(response: Dispatcher.ResponseData, { limit, whole = limit, answer, what, windowMs }: BoundedRead): Promise<Buffer> {
  const tooLarge = () => invalid(`${what}: body exceeds ${limit} bytes`, `${answer} larger than ${formatBytes(whole)}`);
  const declared = response.headers["content-length"];
  if (typeof declared === "string" && Number(declared) > limit) {
    // dump() closes a body longer than its limit at once, unread, and swallows the abort.
    await response.body.dump({ limit: 0 });
    throw tooLarge();
  }
  const body = guardProgress(response.body, windowMs, what);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) {
        body.destroy();
        throw tooLarge();
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError("unreachable", `${what}: ${(err as Error).message}`, { cause: err });
  }
  return Buffer.concat(chunks, size);
}

/** The tags of one tag list page (`{"name": ..., "tags": [...]}`; `tags` may be null or absent when there are none). */
export function tagPage(bytes: Buffer, what: string): string[] {
  const body = jsonObject(bytes, "tag list", what);
  if (body.tags === undefined || body.tags === null) return [];
  if (!Array.isArray(body.tags) || !body.tags.every((tag) => typeof tag === "string")) {
    throw invalid(`${what}: "tags" is not a list of strings`, "tag list whose tags are not strings");
  }
  return body.tags as string[];
}

/**
 * The next page of a tag list from a `Link: <...>; rel="next"` header, resolved against the
 * page it came with; it must be on the upstream's own origin (`isOwn`).
 */
export function nextTagPage(link: string | undefined, page: URL, isOwn: (url: URL) => boolean, what: string): URL | undefined {
  const match = link && /<([^>]*)>\s*;\s*rel="?next"?/.exec(link);
  if (!match) return undefined;
  let next: URL;
  try {
    next = new URL(match[1], page);
  } catch {
    throw invalid(`${what}: Link ${JSON.stringify(match[1].slice(0, 200))} is not a URL`, "tag list page link that is not a URL");
  }
  if (!isOwn(next)) throw invalid(`${what}: the next page is at ${next.origin}`, "tag list page link to another host");
  return next;
}

/** A token from a Docker token (or OAuth2) response, and how long berth may reuse it. */
export function tokenAnswer(bytes: Buffer, what: string): { token: string; expiresIn: number } {
  const body = jsonObject(bytes, "token response", what);
  const token = body.token ?? body.access_token;
  // A token goes into an Authorization header: visible ASCII only, or undici refuses the next request.
  if (typeof token !== "string" || !/^[\x21-\x7e]+$/.test(token)) throw invalid(`${what}: no token, or one that cannot be a header value`, "token response without a usable token");
  const expiresIn = body.expires_in;
  const seconds = typeof expiresIn === "number" && Number.isFinite(expiresIn) && expiresIn > 0 ? Math.min(expiresIn, LIMITS.tokenSeconds) : DEFAULT_TOKEN_SECONDS;
  return { token, expiresIn: seconds };
}

/** One entry of a referrers index. */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** The descriptors of a referrers answer (an OCI image index). */
export function referrersIndex(bytes: Buffer, what: string): ReferrerDescriptor[] {
  const body = jsonObject(bytes, "referrers index", what);
  const manifests = body.manifests ?? [];
  if (!Array.isArray(manifests) || !manifests.every(isDescriptor)) throw invalid(`${what}: "manifests" is not a list of descriptors`, "referrers index that is not an OCI index");
  return manifests;
}

function isDescriptor(value: unknown): value is ReferrerDescriptor {
  if (!isObject(value)) return false;
  const { mediaType, digest, size, artifactType, annotations } = value;
  return (
    typeof mediaType === "string" &&
    typeof digest === "string" &&
    Digest.parse(digest) !== undefined &&
    Number.isSafeInteger(size) &&
    (size as number) >= 0 &&
    (artifactType === undefined || typeof artifactType === "string") &&
    (annotations === undefined || (isObject(annotations) && Object.values(annotations).every((v) => typeof v === "string")))
  );
}

function jsonObject(bytes: Buffer, answer: string, what: string): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw invalid(`${what}: not JSON (${(err as Error).message})`, `${answer} that is not JSON`);
  }
  if (!isObject(body)) throw invalid(`${what}: not a JSON object`, `${answer} that is not a JSON object`);
  return body;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An "invalid" failure: `message` for the log, `reason` for berth's client. */
export function invalid(message: string, reason: string): UpstreamError {
  return new UpstreamError("invalid", message, { reason });
}

function formatBytes(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${bytes} bytes`;
}
