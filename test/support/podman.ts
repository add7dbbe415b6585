import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runCommand, type CommandResult } from "./command.js";
import { makeTempDir, type TempDir } from "./temp-dir.js";

/** One `[[registry]]` of a registries.conf (v2 format). */
export interface RegistryEntry {
  /** The registry's own location, e.g. `127.0.0.1:PORT` or `docker.io`. */
  location: string;
  /** Images whose name starts with this use the entry; default `location`. */
  prefix?: string;
  /** Plain HTTP is allowed; default true (every test registry is plain HTTP on loopback). */
  insecure?: boolean;
  /**
   * Tried in order before `location`, e.g. `127.0.0.1:BERTH/PREFIX` (podman then asks
   * `/v2/PREFIX/<repo>/...`). If every mirror fails podman silently falls back to
   * `location`: make that unreachable to prove a mirror served the pull.
   */
  mirrors?: { location: string; insecure?: boolean }[];
}

export interface PodmanPullOptions {
  /** Require HTTPS; default false. */
  tlsVerify?: boolean;
  /** `USER:PASSWORD` for the registry named in the reference. */
  creds?: string;
  /** e.g. `linux/arm64`: the image picked from an index. */
  platform?: string;
  authfile?: string;
}

/** A pulled image as podman stores it. */
export interface PodmanImage {
  id: string;
  /** The digest of the manifest podman resolved the reference to (an index's for a multi-arch image). */
  digest: string;
  architecture: string;
}

/**
 * podman run as root with storage of its own: `CONTAINERS_STORAGE_CONF` (driver vfs,
 * graphroot and runroot in a temp dir), `CONTAINERS_REGISTRIES_CONF` (set with
 * `setRegistries`) and a `CONTAINERS_CONF` with cgroupfs, file events and a private
 * tmp dir, so concurrent tests never share state with each other or the host.
 */
export class Podman {
  private constructor(private readonly dir: TempDir) {}

  static async create(registries: RegistryEntry[] = []): Promise<Podman> {
    const dir = await makeTempDir("podman");
    try {
      const podman = new Podman(dir);
      const path = (name: string) => JSON.stringify(join(dir.path, name));
      await mkdir(join(dir.path, "tmp"));
      await writeFile(join(dir.path, "storage.conf"), `[storage]\ndriver = "vfs"\ngraphroot = ${path("graph")}\nrunroot = ${path("run")}\n`);
      await writeFile(
        join(dir.path, "containers.conf"),
        `[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nevents_logfile_path = ${path("events.log")}\ntmp_dir = ${path("tmp")}\nvolume_path = ${path("volumes")}\n`,
      );
      await writeFile(join(dir.path, "policy.json"), JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
      await podman.setRegistries(registries);
      return podman;
    } catch (err) {
      await dir.remove();
      throw err;
    }
  }

  /** Rewrites registries.conf; fully qualified names only (no unqualified search). */
  async setRegistries(registries: RegistryEntry[]): Promise<void> {
    const lines = ["unqualified-search-registries = []", 'short-name-mode = "disabled"'];
    for (const entry of registries) {
      lines.push("", "[[registry]]");
      lines.push(`prefix = ${JSON.stringify(entry.prefix ?? entry.location)}`);
      lines.push(`location = ${JSON.stringify(entry.location)}`);
      lines.push(`insecure = ${entry.insecure ?? true}`);
      for (const mirror of entry.mirrors ?? []) {
        lines.push("", "[[registry.mirror]]", `location = ${JSON.stringify(mirror.location)}`, `insecure = ${mirror.insecure ?? true}`);
      }
    }
    await writeFile(join(this.dir.path, "registries.conf"), `${lines.join("\n")}\n`);
  }

  /** `podman pull REFERENCE`; rejects with podman's stderr on failure. */
  async pull(reference: string, options: PodmanPullOptions = {}): Promise<PodmanImage> {
    const args = ["pull", "--quiet", `--tls-verify=${options.tlsVerify ?? false}`, "--signature-policy", join(this.dir.path, "policy.json")];
    if (options.creds !== undefined) args.push("--creds", options.creds);
    if (options.platform) args.push("--platform", options.platform);
    if (options.authfile) args.push("--authfile", options.authfile);
    const id = (await this.run([...args, reference])).stdout.trim().split("\n").pop()!;
    const { stdout } = await this.run(["image", "inspect", "--format", "{{.Digest}} {{.Architecture}}", id]);
    const [digest, architecture] = stdout.trim().split(" ");
    return { id, digest, architecture };
  }

  /** Removes every image, so the next pull fetches again. */
  async removeAllImages(): Promise<void> {
    await this.run(["rmi", "--all", "--force"]);
  }

  /** Runs any podman command with this instance's configuration. */
  run(args: string[]): Promise<CommandResult> {
    return runCommand("podman", args, {
      env: {
        CONTAINERS_STORAGE_CONF: join(this.dir.path, "storage.conf"),
        CONTAINERS_REGISTRIES_CONF: join(this.dir.path, "registries.conf"),
        CONTAINERS_CONF: join(this.dir.path, "containers.conf"),
      },
    });
  }

  async close(): Promise<void> {
    await this.dir.remove();
  }
}
