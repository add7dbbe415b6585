import { readFile } from "node:fs/promises";
import { BerthClient, DEFAULT_BERTH_URL } from "./berth-client.js";
import { UsageError } from "./cli-error.js";

/** The options of every verb that talks to a running berth. */
export const REMOTE_OPTIONS = {
  berth: { type: "string" },
  username: { type: "string" },
  "password-file": { type: "string" },
} as const;

export const REMOTE_USAGE = `  --berth URL            the running berth (default ${DEFAULT_BERTH_URL})
  --username USER        an account, when berth runs auth.mode token; its password comes from
  --password-file FILE   this file, or the BERTH_PASSWORD environment variable`;

export async function berthClientFrom(values: { berth?: string; username?: string; "password-file"?: string }): Promise<BerthClient> {
  if (values.username === undefined) {
    if (values["password-file"] !== undefined) throw new UsageError("--password-file needs --username");
    return new BerthClient(values.berth ?? DEFAULT_BERTH_URL);
  }
  let password = process.env.BERTH_PASSWORD;
  if (values["password-file"] !== undefined) {
    try {
      password = (await readFile(values["password-file"], "utf8")).replace(/\r?\n$/, "");
    } catch (err) {
      throw new UsageError(`cannot read --password-file ${values["password-file"]}: ${(err as Error).message}`);
    }
  }
  if (password === undefined) throw new UsageError("--username needs --password-file or BERTH_PASSWORD");
  return new BerthClient(values.berth ?? DEFAULT_BERTH_URL, { username: values.username, password });
}
