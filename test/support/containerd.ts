import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCommand } from "./command.js";
import { Daemon } from "./daemon.js";
import { makeTempDir, type TempDir } from "./temp-dir.js";

/** The manifest types containerd accepts when it resolves a tag (docs/design.md §7), in its order. */
export const CONTAINERD_ACCEPT: readonly string[] = [
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "*/*",
];

/** One `[host."URL"]` entry of a containerd hosts.toml: a mirror tried before the registry itself. */
export interface MirrorHost {
  /** e.g. `http://127.0.0.1:PORT`, or `http://127.0.0.1:PORT/v2/PREFIX` with `overridePath`. */
  url: string;
  /** Default ["pull", "resolve"]. */
  capabilities?: ("pull" | "resolve" | "push")[];
  /** Use `url`'s path as the API root: asks `/v2/PREFIX/<repo>/...` instead of `/v2/<repo>/...`. */
  overridePath?: boolean;
  /** Extra headers sent to this host. */
  header?: Record<string, string>;
}

/** A hosts.toml for one registry host: its own server and the mirrors in front of it. */
export interface RegistryHosts {
  /** The registry's own URL (`server = ...`); default `http://<registry host>`. */
  server?: string;
  mirrors?: MirrorHost[];
}

/** What `pull` fetched. */
export interface PulledImage {
  reference: string;
  /** The digest the reference resolved to: an index's, when the image has one. */
  digest: string;
  mediaType: string;
  /** Every content digest in the namespace after the pull (manifests, configs, layers fetched so far). */
  contentDigests: string[];
}

export interface PullOptions {
  /** e.g. `linux/arm64`; default the host's platform. */
  platform?: string;
  allPlatforms?: boolean;
  /** `USER:PASSWORD` for the registry (containerd also offers it to mirrors of that host). */
  user?: string;
  /** The `ctr` namespace; default "berth-test". */
  namespace?: string;
}

/**
 * A containerd daemon of the test's own (root, state, gRPC socket in a temp dir; the CRI
 * plugin and snapshotters that need kernel support disabled), driven with `ctr`. Pulls go
 * through `--hosts-dir`, where `setHosts` writes each registry's hosts.toml, and unpack
 * with the `native` snapshotter, which needs no mounts.
 */
export class Containerd {
  private constructor(
    private readonly dir: TempDir,
    private readonly daemon: Daemon,
    /** The gRPC socket, for `ctr -a`. */
    readonly socket: string,
  ) {}

  static async start(): Promise<Containerd> {
    const dir = await makeTempDir("containerd");
    try {
      const socket = join(dir.path, "containerd.sock");
      const configPath = join(dir.path, "config.toml");
      await mkdir(join(dir.path, "hosts"));
      await writeFile(configPath, containerdConfig(dir.path, socket));
      const { daemon } = await Daemon.start({
        name: "containerd",
        command: "containerd",
        args: ["--config", configPath],
        readyLine: /containerd successfully booted/,
        logFile: join(dir.path, "containerd.log"),
      });
      return new Containerd(dir, daemon, socket);
    } catch (err) {
      await dir.remove();
      throw err;
    }
  }

  /** The `--hosts-dir` every pull uses. */
  get hostsDir(): string {
    return join(this.dir.path, "hosts");
  }

  /** Writes `<hostsDir>/<registryHost>/hosts.toml`, replacing an earlier one. */
  async setHosts(registryHost: string, hosts: RegistryHosts): Promise<void> {
    const dir = join(this.hostsDir, registryHost);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "hosts.toml"), hostsToml(registryHost, hosts));
  }

  /** `ctr images pull --hosts-dir ... --snapshotter native REFERENCE`; rejects with ctr's stderr on failure. */
  async pull(reference: string, options: PullOptions = {}): Promise<PulledImage> {
    const args = ["images", "pull", "--hosts-dir", this.hostsDir, "--snapshotter", "native"];
    if (options.platform) args.push("--platform", options.platform);
    if (options.allPlatforms) args.push("--all-platforms");
    if (options.user) args.push("--user", options.user);
    args.push(reference);
    await this.ctr(args, options.namespace);
    const image = (await this.images(options.namespace)).find((i) => i.reference === reference);
    if (!image) throw new Error(`ctr pulled ${reference} but does not list it`);
    return { ...image, contentDigests: await this.contentDigests(options.namespace) };
  }

  /** The images in a namespace (`ctr images ls`). */
  async images(namespace?: string): Promise<{ reference: string; digest: string; mediaType: string }[]> {
    const { stdout } = await this.ctr(["images", "ls"], namespace);
    return stdout
      .split("\n")
      .slice(1)
      .filter((line) => line.trim() !== "")
      .map((line) => {
        const [reference, mediaType, digest] = line.split(/\s+/);
        return { reference, mediaType, digest };
      });
  }

  /** Every content digest (`ctr content ls -q`). */
  async contentDigests(namespace?: string): Promise<string[]> {
    const { stdout } = await this.ctr(["content", "ls", "-q"], namespace);
    return stdout.split("\n").filter((line) => line.startsWith("sha256:"));
  }

  /** Removes an image and lets containerd collect its content, so the next pull fetches it again. */
  async removeImage(reference: string, namespace?: string): Promise<void> {
    await this.ctr(["images", "rm", "--sync", reference], namespace);
  }

  /** Runs any `ctr` command against this daemon. */
  ctr(args: string[], namespace = "berth-test") {
    return runCommand("ctr", ["--address", this.socket, "--namespace", namespace, ...args]);
  }

  async close(): Promise<void> {
    await this.daemon.stop();
    await this.dir.remove();
  }

  diagnostics(): string {
    return this.daemon.recentStderr();
  }
}

/** hosts.toml text: `server`, then one `[host."URL"]` table per mirror, in order of preference. */
export function hostsToml(registryHost: string, hosts: RegistryHosts): string {
  const lines = [`server = ${JSON.stringify(hosts.server ?? `http://${registryHost}`)}`];
  for (const mirror of hosts.mirrors ?? []) {
    lines.push("", `[host.${JSON.stringify(mirror.url)}]`);
    lines.push(`  capabilities = ${JSON.stringify(mirror.capabilities ?? ["pull", "resolve"])}`);
    if (mirror.overridePath) lines.push("  override_path = true");
    if (mirror.header && Object.keys(mirror.header).length > 0) {
      lines.push(`  [host.${JSON.stringify(mirror.url)}.header]`);
      for (const [name, value] of Object.entries(mirror.header)) lines.push(`    ${JSON.stringify(name)} = ${JSON.stringify(value)}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

function containerdConfig(dir: string, socket: string): string {
  const disabled = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
  ];
  return [
    "version = 2",
    `root = ${JSON.stringify(join(dir, "root"))}`,
    `state = ${JSON.stringify(join(dir, "state"))}`,
    `disabled_plugins = ${JSON.stringify(disabled)}`,
    "[grpc]",
    `  address = ${JSON.stringify(socket)}`,
    "[ttrpc]",
    `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
    "[debug]",
    '  address = ""',
    "[metrics]",
    '  address = ""',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(join(dir, "opt"))}`,
    "",
  ].join("\n");
}
