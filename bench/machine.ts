import { availableParallelism, cpus, release, totalmem } from "node:os";
import { runCommand } from "../test/support/command.js";

/** The Debian packages whose versions the figures depend on. */
const PACKAGES = ["docker-registry", "nginx-light", "nginx", "wrk", "apache2-utils", "skopeo", "curl"];

/** What the figures were measured on, as `name: value` lines. */
export async function describeMachine(): Promise<[string, string][]> {
  const versions = await Promise.all(
    PACKAGES.map(async (name) => {
      const version = await runCommand("dpkg-query", ["-W", "-f", "${Version}", name]).then(
        (r) => r.stdout.trim(),
        () => "",
      );
      return version ? `${name} ${version}` : undefined;
    }),
  );
  return [
    ["cpus", `${availableParallelism()} × ${cpus()[0]?.model.trim() ?? "unknown"}`],
    ["memory", `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`],
    ["kernel", release()],
    ["node", process.version],
    ["packages", versions.filter(Boolean).join(", ")],
  ];
}
