import { stat } from "node:fs/promises";
import { configDocument, parseConfig } from "../../config/load.js";
import type { BerthConfig } from "../../config/schema.js";
import { OperationError } from "./cli-error.js";

/** The options of verbs that work on a stopped berth's storage. */
export const OFFLINE_OPTIONS = {
  storage: { type: "string" },
  config: { type: "string" },
} as const;

/**
 * berth's config as `berth serve --config FILE --storage DIR` would read it, for a verb that
 * works on that storage directly; the storage must already exist.
 */
export async function offlineConfig(values: { storage?: string; config?: string }): Promise<BerthConfig> {
  const { document, source } = await configDocument(values.config);
  if (values.storage) document.storage = { ...(document.storage as object | undefined), root: values.storage };
  const config = parseConfig(document, source);
  const root = await stat(config.storage.root).catch(() => undefined);
  if (!root?.isDirectory()) throw new OperationError(`no berth storage at ${config.storage.root}`);
  return config;
}
