import type { MemoryReading, Table, TargetCheck } from "./scenario.js";

export function markdownTable(table: Table): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [`### ${table.title}`, "", line(table.columns), line(table.columns.map(() => "---")), ...table.rows.map(line)].join("\n");
}

export function targetsTable(targets: TargetCheck[]): Table {
  return { title: "Targets", columns: ["target", "measured", "met"], rows: targets.map((t) => [t.target, t.measured, t.met ? "yes" : "**no**"]) };
}

export function memoryTable(readings: MemoryReading[]): Table {
  return { title: "Memory: peak resident set (VmRSS sampled every 20 ms)", columns: ["phase", "process", "peak RSS MiB"], rows: readings.map((r) => [r.phase, r.process, r.peakMiB.toFixed(0)]) };
}

/** `a / b` as `0.93×`. */
export function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}×`;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The list rotated by `by`, so that repeated rounds do not always measure the systems in one order. */
export function rotated<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}
