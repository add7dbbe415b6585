import { parseArgs } from "node:util";
import { ACCEPT_ANY_MANIFEST } from "./berth-client.js";
import { OperationError } from "./cli-error.js";
import { imageArguments } from "./image-arguments.js";
import { berthClientFrom, REMOTE_OPTIONS, REMOTE_USAGE } from "./remote-options.js";
import type { Verb } from "./verb.js";

/** `berth resolve IMAGE...`: each image's digest at berth, as `IMAGE@sha256:...`. */
export const resolve: Verb = {
  summary: "resolve IMAGE...         print IMAGE@sha256:... as a running berth resolves each tag",
  help: `usage: berth resolve [--berth URL] IMAGE...

Asks a running berth for the digest of each IMAGE's tag (through its upstream for the image's
registry, which caches the manifest) and prints IMAGE@sha256:... for each, in order.
A multi-arch tag resolves to its index, as a runtime's pull does. An IMAGE that already has a
digest is checked to exist. Exit 1 if any image could not be resolved.

${REMOTE_USAGE}`,

  async run(args, terminal) {
    const { values, positionals } = parseArgs({ args, options: REMOTE_OPTIONS, allowPositionals: true, strict: true });
    const images = imageArguments(positionals, "resolve");
    const client = await berthClientFrom(values);
    let failed = 0;
    for (const { text, reference } of images) {
      try {
        const asked = reference.digest?.toString() ?? reference.pullTag!;
        // A GET (not HEAD) so that a refusal carries berth's error message.
        const response = await client.send("GET", client.imagePath(reference, "manifests", asked), { accept: ACCEPT_ANY_MANIFEST });
        await response.arrayBuffer();
        const digest = response.headers.get("docker-content-digest");
        if (!digest) throw new OperationError("berth answered without a Docker-Content-Digest");
        terminal.stdout.write(`${reference.digest ? text : `${text}@${digest}`}\n`);
      } catch (err) {
        if (!(err instanceof OperationError)) throw err;
        if (images.length === 1) throw new OperationError(`${text}: ${err.message}`);
        failed++;
        terminal.stderr.write(`berth resolve: ${text}: ${err.message}\n`);
      }
    }
    if (failed > 0) throw new OperationError(`${failed} of ${images.length} images not resolved`);
  },
};
