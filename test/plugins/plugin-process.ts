import { spawn } from "node:child_process";
import { chmod, mkdir, symlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { onProcessExit } from "../support/process-exit.js";

/** The built executables, as package.json's `bin` names them; this module runs from dist/test/plugins/. */
export const PLUGIN_MAINS = {
  "berth-credential-provider": resolve(__dirname, "../../plugins/kubelet-credential-provider/main.js"),
  "docker-credential-berth": resolve(__dirname, "../../plugins/docker-credential-berth/main.js"),
} as const;

export type PluginName = keyof typeof PLUGIN_MAINS;

/**
 * A bin dir holding the plugins under their installed names, executable (what `npm install`
 * does for `bin` entries): the kubelet's `--image-credential-provider-bin-dir`, or a PATH entry
 * where docker and skopeo find `docker-credential-berth`.
 */
export async function installPlugins(dir: string): Promise<string> {
  const bin = join(dir, "bin");
  await mkdir(bin, { recursive: true });
  for (const [name, main] of Object.entries(PLUGIN_MAINS)) {
    await chmod(main, 0o755);
    await symlink(main, join(bin, name));
  }
  return bin;
}

export interface PluginRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The test's environment without any BERTH_* variable, so each test says exactly what the plugin sees. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("BERTH_")));
  return { ...env, ...extra };
}

/** Executes `<bin>/<name> args...` directly (no shell), writes `stdin` and closes it, and collects everything. */
export function runPlugin(bin: string, name: PluginName, args: readonly string[], env: NodeJS.ProcessEnv, stdin: string): Promise<PluginRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(join(bin, name), args, { env, stdio: ["pipe", "pipe", "pipe"] });
    const unregister = onProcessExit(() => child.kill("SIGKILL"));
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      unregister();
      reject(err);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      unregister();
      resolvePromise({ code, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8") });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(stdin);
  });
}
