#!/usr/bin/env node
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { ConfigError, configDocument, parseConfig } from "../config/load.js";
import { isVerb, runVerb, VERBS } from "./cli/verbs.js";
import { createLogger } from "./log.js";
import { startBerth } from "./server.js";

const USAGE = `usage: berth serve [--config FILE] [--listen HOST:PORT] [--storage DIR] [--no-admission]
       berth <verb> [options]   (berth <verb> --help)

  serve                    run the registry (the embedded default config when --config is absent)
${Object.values(VERBS)
  .map((verb) => `  ${verb.summary}`)
  .join("\n")}`;

const HEAP_GROWING_PERCENT = 50;

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string" },
      listen: { type: "string" },
      storage: { type: "string" },
      // One config for every tier: the registry tier runs without the config's webhook.
      "no-admission": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const { document, source } = await configDocument(values.config);
  if (values.listen) document.listen = values.listen;
  if (values.storage) document.storage = { ...(document.storage as object | undefined), root: values.storage };
  if (values["no-admission"]) delete document.admission;
  const config = parseConfig(document, source);
  // V8 lets its old generation grow to as much as 4 times what the last full collection kept
  // before it collects again: under 1,000 clients ~170 MiB of heap for ~45 MiB alive. Growing
  // by half instead holds berth under 200 MiB there (bench/RESULTS.md), for more full
  // collections, whose marking runs mostly on V8's helper threads.
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  const log = createLogger(config.log.level);
  const berth = await startBerth(config, log);
  log.info(`listening on ${berth.url}`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, "second signal: exiting at once");
      process.exit(1);
    }
    stopping = true;
    log.info({ signal, gracePeriodMs: config.shutdown.gracePeriod }, "shutting down");
    berth.close().then(
      () => {
        log.info("stopped");
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve":
      return serve(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      if (isVerb(command)) {
        process.exitCode = await runVerb(command, rest);
        return;
      }
      throw new ConfigError(`unknown command ${JSON.stringify(command)}\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const reason = err instanceof ConfigError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
    ? (err as Error).message
    : `berth: ${(err as Error).message ?? String(err)}`;
  process.stderr.write(`${reason.split("\n")[0]}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
