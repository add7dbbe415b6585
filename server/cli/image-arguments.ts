import { ImageReference, ImageReferenceError } from "../reference/image-reference.js";
import { UsageError } from "./cli-error.js";

/** Parses IMAGE arguments; a malformed one is a usage error naming it. */
export function imageArguments(positionals: readonly string[], verb: string): { text: string; reference: ImageReference }[] {
  if (positionals.length === 0) throw new UsageError(`${verb} needs at least one IMAGE`);
  return positionals.map((text) => {
    try {
      return { text, reference: ImageReference.parse(text) };
    } catch (err) {
      if (err instanceof ImageReferenceError) throw new UsageError(err.message);
      throw err;
    }
  });
}
