import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { configSchema, type BerthConfig } from "./schema.js";

/** A configuration that cannot be used; its message is one line, fit for the exit reason. */
export class ConfigError extends Error {}

/** The public registries a Kubernetes node pulls from: the embedded default mirrors each. */
export const PUBLIC_REGISTRIES = ["docker.io", "registry.k8s.io", "ghcr.io", "quay.io", "gcr.io", "mcr.microsoft.com", "public.ecr.aws"] as const;

/**
 * The embedded default configuration, what `berth serve` runs without --config (`npm start`):
 * every key at its default, and a mirror of each public registry, reached by containerd's
 * `?ns=HOST` and by the path prefix `/v2/HOST/...`.
 */
export function embeddedDefaultDocument(): Record<string, unknown> {
  return { upstreams: PUBLIC_REGISTRIES.map((host) => ({ host })) };
}

const EMBEDDED_DEFAULT = "embedded default config";

export function defaultConfig(): BerthConfig {
  return parseConfig(embeddedDefaultDocument(), EMBEDDED_DEFAULT);
}

/** The document `--config FILE` names, or the embedded default's; with its name for messages. */
export async function configDocument(path: string | undefined): Promise<{ document: Record<string, unknown>; source: string }> {
  return path ? { document: await readConfigDocument(path), source: path } : { document: embeddedDefaultDocument(), source: EMBEDDED_DEFAULT };
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


