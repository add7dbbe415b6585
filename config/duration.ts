import { z } from "zod";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go-style duration (`90s`, `5m`, `1h30m`, `0`) or a number of seconds into milliseconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  const text = value.trim();
  if (text === "0") return 0;
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/gy)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) return undefined;
  return parts.reduce((total, [, amount, unit]) => total + Number(amount) * UNIT_MS[unit], 0);
}

/** A config field holding a duration; parsed to milliseconds. */
export function duration(defaultValue: string) {
  return z
    .union([z.string(), z.number()])
    .default(defaultValue)
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === undefined) {
        ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not a duration (like 30s, 5m, 1h)` });
        return z.NEVER;
      }
      return ms;
    });
}
