import { z } from "zod";

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, "must be HOST:PORT")
  .describe("Address to listen on, HOST:PORT.");

/** berth's configuration file. Every key has a default; `config/README.md` documents each. */
export const configSchema = z
  .object({
    listen: hostPort.default("127.0.0.1:5000"),
    storage: z
      .object({
        root: z.string().min(1).default("./data").describe("Directory holding blobs, manifests, tags and uploads."),
      })
      .strict()
      .default({ root: "./data" }),
    log: z
      .object({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info").describe("Log level of the JSON logs on stderr."),
      })
      .strict()
      .default({ level: "info" }),
    auth: z
      .object({
        mode: z.enum(["none"]).default("none").describe("none: anyone may pull and push (a laptop or a trusted node)."),
      })
      .strict()
      .default({ mode: "none" }),
  })
  .strict();

export type BerthConfig = z.infer<typeof configSchema>;
