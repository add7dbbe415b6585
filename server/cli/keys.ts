import { join } from "node:path";
import { parseArgs } from "node:util";
import { KeyDirectory } from "../auth/generated-keys.js";
import { KeyRing } from "../auth/signing-keys.js";
import { OperationError, UsageError } from "./cli-error.js";
import { OFFLINE_OPTIONS, offlineConfig } from "./offline-config.js";
import type { Verb } from "./verb.js";

/** `berth keys rotate`: a new token signing key in a stopped berth's storage. */
export const keys: Verb = {
  summary: "keys rotate              replace the token signing key (on a stopped berth's storage)",
  help: `usage: berth keys rotate --storage DIR [--config FILE]
       berth keys rotate --config FILE

Generates a new token signing key under STORAGE/auth/keys (auth.token.algorithm of the config,
default ES256). berth signs with it from its next start; the previous key keeps verifying the
tokens it signed until they expire (auth.token.lifetime / refreshLifetime), then is deleted.
Run it while berth is stopped: a running berth keeps signing with the key it loaded, and
would retire that key too early when it restarts.

A key given as auth.token.signingKeyFile is not berth's to rotate: replace that file, keeping
the old one in auth.token.verificationKeyFiles until its tokens expire.

  --storage DIR          berth's storage root (default: storage.root of --config)
  --config FILE          berth's config file`,

  async run(args, terminal) {
    const { values, positionals } = parseArgs({ args, options: OFFLINE_OPTIONS, allowPositionals: true, strict: true });
    if (positionals.length !== 1 || positionals[0] !== "rotate") throw new UsageError(`keys takes one action, rotate${positionals.length > 0 ? `, not ${JSON.stringify(positionals.join(" "))}` : ""}`);
    if (values.storage === undefined && values.config === undefined) throw new UsageError("keys rotate needs --storage DIR or --config FILE (a stopped berth's storage)");
    const config = await offlineConfig(values);
    if (values.config !== undefined && config.auth.mode !== "token") throw new OperationError(`${values.config} has auth.mode ${config.auth.mode}: berth signs no tokens`);
    const { token } = config.auth;
    if (token.signingKeyFile !== undefined) throw new OperationError(`the signing key is auth.token.signingKeyFile (${token.signingKeyFile}): rotate by replacing that file`);
    const directory = join(config.storage.root, "auth", "keys");
    const ring = await KeyRing.open({
      algorithm: token.algorithm,
      store: new KeyDirectory(directory),
      verificationKeyFiles: token.verificationKeyFiles,
      rotationMs: token.keyRotation,
      retentionMs: Math.max(token.lifetime, token.refreshLifetime),
      now: Date.now,
    });
    const previous = (await ring.signingKey()).kid;
    const key = await ring.rotate();
    terminal.stdout.write(`rotated: berth signs with ${key.kid} (${key.alg}) from its next start; ${previous} verifies its tokens until they expire\n`);
  },
};
