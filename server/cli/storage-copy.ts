import { createHash } from "node:crypto";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { parseConfig, readConfigDocument } from "../../config/load.js";
import type { StorageConfig } from "../../config/storage-schema.js";
import { formatBytes } from "../human-readable.js";
import type { StorageDriver, WalkedObject } from "../storage/driver.js";
import { openStorage } from "../storage/open-storage.js";
import type { Storage } from "../storage/storage.js";
import { OperationError, UsageError } from "./cli-error.js";
import { transferProgressOn } from "./transfer-progress.js";
import type { Verb } from "./verb.js";

/** What a store holds that is not copied: the driver's own files, and upload sessions (their format is the driver's). */
const NOT_COPIED = /^(_probe$|_lease$|_tmp\/|uploads\/)/;
const BLOB_PATH = /^blobs\/(sha256|sha512)\/[0-9a-f]{2}\/([0-9a-f]+)$/;

/** `berth storage copy`: a store copied between drivers, e.g. a filesystem store into a bucket. */
export const storage: Verb = {
  summary: "storage copy             copy a stopped berth's store between a directory and an S3 bucket",
  help: `usage: berth storage copy --from SOURCE --to DESTINATION [--config FILE]

Copies every blob, manifest, tag, link and record of a stopped berth's store to another
store, where berth can serve them from. SOURCE and DESTINATION are each a directory (a
filesystem store: storage.root) or s3://BUCKET[/PREFIX] (the bucket must exist); the key
layout is the same in both. S3's endpoint, region, credentials and other settings come from
storage.s3 of --config (bucket and prefix from the URL).

Every blob is hashed on the way and copied only if it hashes to its name; objects the
destination already holds with the same size are skipped, so an interrupted copy resumes.
Upload sessions in progress are not copied (clients restart those pushes). Progress goes to
stderr, the summary to stdout.

  --from SOURCE          a directory or s3://BUCKET[/PREFIX]
  --to DESTINATION       a directory or s3://BUCKET[/PREFIX]
  --config FILE          berth's config file (for storage.s3's settings)`,

  async run(args, terminal) {
    const { values, positionals } = parseArgs({ args, options: { from: { type: "string" }, to: { type: "string" }, config: { type: "string" } }, allowPositionals: true, strict: true });
    if (positionals.length !== 1 || positionals[0] !== "copy") throw new UsageError(`storage takes one action, copy${positionals.length > 0 ? `, not ${JSON.stringify(positionals.join(" "))}` : ""}`);
    if (!values.from || !values.to) throw new UsageError("storage copy needs --from and --to");
    const base = values.config ? await readConfigDocument(values.config) : {};
    const scratch = await mkdtemp(join(tmpdir(), "berth-storage-copy-"));
    const opened: Storage[] = [];
    try {
      const from = await openLocation(values.from, base, join(scratch, "from"), "source");
      opened.push(from);
      const to = await openLocation(values.to, base, join(scratch, "to"), "destination");
      opened.push(to);
      const report = await copyStore(from.driver, to.driver, transferProgressOn(terminal.stderr));
      terminal.stdout.write(
        `copied ${report.copied} objects (${formatBytes(report.copiedBytes)}); ${report.present} already there; ${report.corrupt.length} blobs that do not hash to their names skipped${report.corrupt.length > 0 ? `: ${report.corrupt.join(", ")}` : ""}\n`,
      );
      if (report.corrupt.length > 0) throw new OperationError(`${report.corrupt.length} blobs of the source do not hash to their names and were not copied`);
    } finally {
      for (const store of opened) await store.close();
      await rm(scratch, { recursive: true, force: true });
    }
  },
};

/** Opens a directory or s3://BUCKET/PREFIX as a store; `scratch` is the local root an S3 store needs (its spool). */
async function openLocation(location: string, config: Record<string, unknown>, scratch: string, role: string): Promise<Storage> {
  const url = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  const storageDocument = (config.storage ?? {}) as Record<string, unknown>;
  let storage: StorageConfig;
  if (url) {
    const prefix = url[2] === "" || url[2].endsWith("/") ? url[2] : `${url[2]}/`;
    const s3 = { ...(storageDocument.s3 as object | undefined), bucket: url[1], prefix };
    storage = parseConfig({ ...config, storage: { ...storageDocument, driver: "s3", root: scratch, s3 } }, `--${role === "source" ? "from" : "to"}`).storage;
  } else {
    if (role === "source" && !(await stat(location).catch(() => undefined))?.isDirectory()) throw new OperationError(`no berth storage at ${location}`);
    storage = parseConfig({ ...config, storage: { ...storageDocument, driver: "filesystem", root: location, s3: undefined } }, `--${role === "source" ? "from" : "to"}`).storage;
  }
  try {
    return await openStorage(storage);
  } catch (err) {
    throw new OperationError(`cannot open the ${role} ${location}: ${(err as Error).message}`);
  }
}

export interface CopyReport {
  copied: number;
  copiedBytes: number;
  present: number;
  corrupt: string[];
}

/** Copies every object of `from` to `to` (one walk of `from`), blobs only when they hash to their names. */
export async function copyStore(from: StorageDriver, to: StorageDriver, progress: ReturnType<typeof transferProgressOn>): Promise<CopyReport> {
  const objects: WalkedObject[] = [];
  for await (const object of from.walk("")) if (!NOT_COPIED.test(object.path)) objects.push(object);
  const total = objects.reduce((sum, o) => sum + o.size, 0);
  const tracker = progress.start(`copying ${objects.length} objects`, total);
  const report: CopyReport = { copied: 0, copiedBytes: 0, present: 0, corrupt: [] };
  try {
    for (const object of objects) {
      if ((await to.stat(object.path))?.size === object.size) {
        report.present++;
        tracker.advance(object.size);
        continue;
      }
      const opened = await from.open(object.path);
      if (!opened) continue; // deleted since the walk
      const blob = BLOB_PATH.exec(object.path);
      const hash = blob ? createHash(blob[1]) : undefined;
      const pending = await to.createPending({ target: object.path });
      try {
        await pipeline(
          opened.stream,
          new Transform({
            transform(chunk: Buffer, _encoding, callback) {
              hash?.update(chunk);
              tracker.advance(chunk.length);
              callback(null, chunk);
            },
          }),
          pending.stream,
        );
        if (blob && hash!.digest("hex") !== blob[2]) {
          await pending.discard();
          report.corrupt.push(object.path);
          continue;
        }
        await pending.commit(object.path);
      } catch (err) {
        await pending.discard();
        throw err;
      }
      report.copied++;
      report.copiedBytes += object.size;
    }
    tracker.done(false);
  } catch (err) {
    tracker.failed((err as Error).message);
    throw err;
  } finally {
    progress.stop();
  }
  return report;
}
