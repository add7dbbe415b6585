import { ConfigError } from "../../config/load.js";
import { UsageError } from "./cli-error.js";
import { gc } from "./gc.js";
import { keys } from "./keys.js";
import { policy } from "./policy.js";
import { resolve } from "./resolve.js";
import { storage } from "./storage-copy.js";
import type { Terminal, Verb } from "./verb.js";
import { warm } from "./warm.js";

/** Every `berth <verb>` but serve. */
export const VERBS: Readonly<Record<string, Verb>> = { resolve, warm, policy, gc, keys, storage };

export function isVerb(name: string): boolean {
  return Object.hasOwn(VERBS, name);
}

/**
 * Runs a verb and returns its exit code: 0 done, 1 the operation failed, 2 a usage error.
 * Failures are one line on stderr.
 */
export async function runVerb(name: string, args: string[], terminal: Terminal = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const verb = VERBS[name];
  if (args.includes("--help") || args.includes("-h")) {
    terminal.stdout.write(`${verb.help}\n`);
    return 0;
  }
  try {
    await verb.run(args, terminal);
    return 0;
  } catch (err) {
    const usage = err instanceof UsageError || err instanceof ConfigError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    let message = (err as Error).message ?? String(err);
    // node's parseArgs appends advice about `--` to an unknown option: the option is what matters.
    if ((err as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") message = message.replace(/\. To specify a positional argument.*$/s, "");
    terminal.stderr.write(`berth ${name}: ${message.split("\n")[0]}${usage ? ` (berth ${name} --help)` : ""}\n`);
    return usage ? 2 : 1;
  }
}
