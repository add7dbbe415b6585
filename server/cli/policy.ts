import { parseArgs } from "node:util";
import { ImageReference, ImageReferenceError } from "../reference/image-reference.js";
import { isPullPolicy, PULL_POLICIES, pullPolicyFor } from "../admission/pull-policy.js";
import { UsageError } from "./cli-error.js";
import type { Verb } from "./verb.js";

/** `berth policy IMAGE`: the pull policy a container with this image runs with, and why. */
export const policy: Verb = {
  summary: "policy IMAGE             print the imagePullPolicy Kubernetes gives IMAGE, and why",
  help: `usage: berth policy IMAGE [--pull-policy Always|IfNotPresent|Never]

Prints the effective imagePullPolicy of a container running IMAGE (first line), the image as
Kubernetes normalises it, and why: an explicit --pull-policy is kept; an omitted one is
defaulted when the pod is created, to Always for :latest or no tag, and to IfNotPresent for
any other tag or a digest alone. Works offline.`,

  async run(args, terminal) {
    const { values, positionals } = parseArgs({ args, options: { "pull-policy": { type: "string" } }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new UsageError(`policy takes one IMAGE, not ${positionals.length}`);
    const explicit = values["pull-policy"];
    if (explicit !== undefined && !isPullPolicy(explicit)) throw new UsageError(`--pull-policy must be ${PULL_POLICIES.slice(0, -1).join(", ")} or ${PULL_POLICIES.at(-1)}, not ${JSON.stringify(explicit)}`);
    const [image] = positionals;
    const decision = pullPolicyFor(image, explicit);
    let normalised: string;
    try {
      normalised = ImageReference.parse(image).toString();
    } catch (err) {
      if (!(err instanceof ImageReferenceError)) throw err;
      normalised = "(not a valid image reference)";
    }
    terminal.stdout.write(`${decision.policy}\n  image: ${normalised}\n  why:   ${decision.reason}\n`);
  },
};
