/**
 * Go's `filepath.Match` (Unix flavour), which kubelet applies to each dot-separated host
 * label of a credential key: `*` any run of characters, `?` one character, `[a-z]`,
 * `[^a-z]` classes, `\` escapes. A malformed pattern matches nothing, because kubelet
 * treats Match's ErrBadPattern as "no match".
 *
 * Go's `/` separator rule is left out: a label never contains `/` (the host ends at the
 * first `/`).
 */
export function hostLabelMatches(pattern: string, label: string): boolean {
  return match(Array.from(pattern), Array.from(label)) === true;
}

const MALFORMED = Symbol("malformed");
type Malformed = typeof MALFORMED;

// Same greedy algorithm as Go: the pattern is a list of chunks, each optionally led by `*`.
function match(pattern: string[], name: string[]): boolean | Malformed {
  let rest = pattern;
  let subject = name;
  chunks: while (rest.length > 0) {
    const { star, chunk, after } = scanChunk(rest);
    rest = after;
    if (star && chunk.length === 0) return true;
    const here = matchChunk(chunk, subject);
    if (here === MALFORMED) return MALFORMED;
    if (here !== undefined && (here.length === 0 || rest.length > 0)) {
      subject = here;
      continue;
    }
    if (star) {
      for (let skip = 1; skip <= subject.length; skip++) {
        const later = matchChunk(chunk, subject.slice(skip));
        if (later === MALFORMED) return MALFORMED;
        if (later === undefined || (rest.length === 0 && later.length > 0)) continue;
        subject = later;
        continue chunks;
      }
    }
    return false;
  }
  return subject.length === 0;
}

function scanChunk(pattern: string[]): { star: boolean; chunk: string[]; after: string[] } {
  let start = 0;
  while (start < pattern.length && pattern[start] === "*") start++;
  let inClass = false;
  let end = start;
  for (; end < pattern.length; end++) {
    const c = pattern[end];
    if (c === "\\") {
      if (end + 1 < pattern.length) end++;
    } else if (c === "[") {
      inClass = true;
    } else if (c === "]") {
      inClass = false;
    } else if (c === "*" && !inClass) {
      break;
    }
  }
  return { star: start > 0, chunk: pattern.slice(start, end), after: pattern.slice(end) };
}

/** Matches a star-free chunk against the start of s; returns what is left of s, or undefined. */
function matchChunk(chunk: string[], s: string[]): string[] | undefined | Malformed {
  let c = 0;
  let i = 0;
  while (c < chunk.length) {
    if (i >= s.length) return undefined;
    switch (chunk[c]) {
      case "[": {
        const subject = codePoint(s[i++]);
        c++;
        const negated = chunk[c] === "^";
        if (negated) c++;
        let matched = false;
        let ranges = 0;
        for (;;) {
          if (c < chunk.length && chunk[c] === "]" && ranges > 0) {
            c++;
            break;
          }
          const lo = classCharacter(chunk, c);
          if (lo === MALFORMED) return MALFORMED;
          const hi = chunk[lo.next] === "-" ? classCharacter(chunk, lo.next + 1) : lo;
          if (hi === MALFORMED) return MALFORMED;
          c = hi.next;
          if (lo.codePoint <= subject && subject <= hi.codePoint) matched = true;
          ranges++;
        }
        if (matched === negated) return undefined;
        break;
      }
      case "?":
        i++;
        c++;
        break;
      default: {
        if (chunk[c] === "\\") {
          c++;
          if (c >= chunk.length) return MALFORMED;
        }
        if (chunk[c] !== s[i]) return undefined;
        i++;
        c++;
      }
    }
  }
  return s.slice(i);
}

/** Go's getEsc: one possibly escaped character of a class, which must be followed by more. */
function classCharacter(chunk: string[], at: number): { codePoint: number; next: number } | Malformed {
  let c = at;
  if (c >= chunk.length || chunk[c] === "-" || chunk[c] === "]") return MALFORMED;
  if (chunk[c] === "\\") {
    c++;
    if (c >= chunk.length) return MALFORMED;
  }
  const next = c + 1;
  if (next >= chunk.length) return MALFORMED;
  return { codePoint: codePoint(chunk[c]), next };
}

function codePoint(character: string): number {
  return character.codePointAt(0) as number;
}
