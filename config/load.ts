import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { configSchema, type BerthConfig } from "./schema.js";

/** A configuration that cannot be used; its message is one line, fit for the exit reason. */
export class ConfigError extends Error {}

/** The embedded default configuration: what `npm start` runs with. */
export function defaultConfig(): BerthConfig {
  return configSchema.parse({});
}

export function parseConfig(value: unknown, source: string): BerthConfig {
  const result = configSchema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
  throw new ConfigError(`${source}: ${where}: ${issue.message}`);
}

/** Reads a YAML config file as a raw document, to be overridden and then parsed once. */
export async function readConfigDocument(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${path}: cannot read: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path}: invalid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new ConfigError(`${path}: the top level must be a mapping`);
  return value as Record<string, unknown>;
}

export async function loadConfigFile(path: string): Promise<BerthConfig> {
  return parseConfig(await readConfigDocument(path), path);
}


