import { parseArgs } from "node:util";
import { makeTempDir } from "../test/support/temp-dir.js";
import { describeMachine } from "./machine.js";
import { markdownTable, memoryTable, targetsTable } from "./report.js";
import { FULL_SIZES, QUICK_SIZES, type MemoryReading, type Scenario, type Table, type TargetCheck } from "./scenario.js";
import { coldPull } from "./scenarios/cold-pull.js";
import { connections } from "./scenarios/connections.js";
import { herd } from "./scenarios/herd.js";
import { loginFlood } from "./scenarios/login-flood.js";
import { manifests } from "./scenarios/manifests.js";
import { replicas } from "./scenarios/replicas.js";
import { s3 } from "./scenarios/s3.js";
import { warmBlob } from "./scenarios/warm-blob.js";

const SCENARIOS: Scenario[] = [warmBlob, coldPull, herd, manifests, loginFlood, s3, replicas, connections];
/** Names that select several scenarios: memory is read during the warm 16-client read, the herd and the 1,000 connections. */
const GROUPS: Record<string, string[]> = { memory: ["warm-blob", "herd", "connections"] };

const USAGE = `usage: npm run bench [-- [--quick] [SCENARIO...]]

  --quick   small sizes and short runs: a smoke test of the benchmarks, not figures
  SCENARIO  run only these (default: all):
${SCENARIOS.map((s) => `            ${s.name.padEnd(12)} ${s.description}`).join("\n")}
            memory       warm-blob, herd and connections, which read berth's peak RSS`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ options: { quick: { type: "boolean" }, help: { type: "boolean", short: "h" } }, allowPositionals: true });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const names = new Set(positionals.flatMap((name) => GROUPS[name] ?? [name]));
  const unknown = [...names].filter((name) => !SCENARIOS.some((s) => s.name === name));
  if (unknown.length > 0) {
    process.stderr.write(`unknown scenario ${unknown.join(", ")}\n${USAGE}\n`);
    return 2;
  }
  const selected = names.size === 0 ? SCENARIOS : SCENARIOS.filter((s) => names.has(s.name));
  const sizes = values.quick ? QUICK_SIZES : FULL_SIZES;

  const started = Date.now();
  const machine = await describeMachine();
  const tables: Table[] = [];
  const targets: TargetCheck[] = [];
  const memory: MemoryReading[] = [];
  const failures: string[] = [];
  for (const scenario of selected) {
    const work = await makeTempDir(`bench-${scenario.name}`);
    const progress = (message: string) => process.stderr.write(`[${scenario.name}] ${message}\n`);
    try {
      const result = await scenario.run({ sizes, workDir: work.path, progress });
      tables.push(...result.tables);
      targets.push(...result.targets);
      memory.push(...result.memory);
    } catch (err) {
      failures.push(`${scenario.name}: ${(err as Error).stack ?? String(err)}`);
      progress(`failed: ${(err as Error).message}`);
    } finally {
      await work.remove();
    }
  }

  const lines = [
    `## berth benchmarks${values.quick ? " (--quick: smoke run, not figures)" : ""}`,
    "",
    `${new Date().toISOString().slice(0, 10)}, ${((Date.now() - started) / 60_000).toFixed(1)} min`,
    "",
    ...machine.map(([name, value]) => `- ${name}: ${value}`),
    "",
    ...[...tables, ...(memory.length > 0 ? [memoryTable(memory)] : []), targetsTable(targets)].flatMap((table) => [markdownTable(table), ""]),
  ];
  process.stdout.write(`${lines.join("\n")}`);
  for (const failure of failures) process.stderr.write(`\nFAILED ${failure}\n`);
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
