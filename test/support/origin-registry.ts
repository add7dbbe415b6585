import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify as toYaml } from "yaml";
import { countRequests, parseAccessLogLine, type AccessLogEntry } from "./access-log.js";
import { runCommand } from "./command.js";
import { Daemon } from "./daemon.js";
import { makeTempDir, type TempDir } from "./temp-dir.js";
import type { TokenIssuer } from "./token-issuer.js";

/** How the origin authenticates clients. */
export type OriginAuth =
  | { kind: "anonymous" }
  /** Basic auth against a bcrypt htpasswd file made with `htpasswd -Bbn`. */
  | { kind: "htpasswd"; users: Record<string, string> }
  /** Bearer tokens from an in-test issuer (see token-issuer.ts). */
  | { kind: "token"; issuer: TokenIssuer };

export interface OriginRegistryOptions {
  /** Default anonymous: anyone may pull and push. */
  auth?: OriginAuth;
  /**
   * Runs Distribution's own pull-through proxy of this upstream instead of a plain registry
   * (the reference berth's mirror is measured against). The upstream must be up first:
   * Distribution panics at start-up otherwise. It can only authenticate to Bearer realms.
   */
  proxy?: { remoteUrl: string; username?: string; password?: string };
  /**
   * Takes foreign (non-distributable) layers whose urls match this regular expression, as
   * Docker Hub takes Windows base layers; Distribution refuses every foreign layer otherwise.
   */
  foreignLayerUrls?: string;
}

/**
 * A real CNCF Distribution (`docker-registry serve`) on a free loopback port, with its
 * config, storage (deletes enabled) and logs in a temp dir. Tests count the requests it
 * served through its access log.
 */
export class OriginRegistry {
  private syncCounter = 0;

  private constructor(
    private readonly dir: TempDir,
    private readonly configPath: string,
    /** `127.0.0.1:PORT`: the name clients use for it (`HOST/REPO:TAG`). */
    readonly host: string,
    private daemon: Daemon,
    /** Parsed access-log lines of every run, in order. */
    private readonly entries: AccessLogEntry[],
  ) {}

  /** Starts it and waits until it answers `/v2/`. */
  static async start(options: OriginRegistryOptions = {}): Promise<OriginRegistry> {
    const dir = await makeTempDir("origin");
    try {
      const config = await registryConfig(dir.path, options);
      const configPath = join(dir.path, "config.yml");
      await writeFile(configPath, toYaml(config));
      const entries: AccessLogEntry[] = [];
      const { daemon, host } = await startDaemon(dir.path, configPath, entries);
      // Pin the port it chose, so that a restart comes back at the same address.
      await writeFile(configPath, toYaml({ ...config, http: { ...config.http, addr: host } }));
      const origin = new OriginRegistry(dir, configPath, host, daemon, entries);
      await origin.waitUntilAnswering().catch(async (err: unknown) => {
        await daemon.kill();
        throw err;
      });
      return origin;
    } catch (err) {
      await dir.remove();
      throw err;
    }
  }

  /** `http://127.0.0.1:PORT`. */
  get url(): string {
    return `http://${this.host}`;
  }

  /** Its filesystem storage root. */
  get storageDir(): string {
    return join(this.dir.path, "storage");
  }

  get running(): boolean {
    return this.daemon.running;
  }

  /** The current process's id (it changes with `restart`), e.g. to read its memory from /proc. */
  get pid(): number {
    return this.daemon.pid;
  }

  /**
   * Every request it served so far (across restarts). A request whose response a client
   * has just received may not be logged yet, so this first sends a marker request and
   * waits until the marker is logged.
   */
  async accessLog(): Promise<AccessLogEntry[]> {
    const marker = `berth-access-log-sync=${++this.syncCounter}`;
    await fetch(`${this.url}/v2/?${marker}`).then((res) => res.arrayBuffer());
    for (let attempt = 0; !this.entries.some((e) => e.query === marker); attempt++) {
      if (attempt > 500) throw this.daemon.failure("never logged the access-log marker request");
      await sleep(10);
    }
    return this.entries.filter((entry) => !entry.query.startsWith("berth-access-log-sync="));
  }

  /** How many requests with this method and exact path it served, e.g. `count("GET", "/v2/repo/blobs/sha256:...")`. */
  async count(method: string, path: string): Promise<number> {
    return countRequests(await this.accessLog(), method, path);
  }

  /** SIGTERM; the storage stays for `restart`. */
  async stop(): Promise<void> {
    await this.daemon.stop();
  }

  /** Starts it again on the same port, config and storage (stopping it first if it runs). */
  async restart(): Promise<void> {
    await this.daemon.stop();
    const restarted = await startDaemon(this.dir.path, this.configPath, this.entries);
    this.daemon = restarted.daemon;
    await this.waitUntilAnswering();
  }

  /** Stops it and removes its temp dir. */
  async close(): Promise<void> {
    await this.daemon.stop();
    await this.dir.remove();
  }

  /** The last lines it wrote on stderr, for a failing test's message. */
  diagnostics(): string {
    return this.daemon.recentStderr();
  }

  private async waitUntilAnswering(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const answered = await fetch(`${this.url}/v2/`).then(
        async (res) => (await res.arrayBuffer(), true),
        () => false,
      );
      if (answered) return;
      if (attempt > 200 || !this.daemon.running) throw this.daemon.failure("never answered /v2/");
      await sleep(25);
    }
  }
}

async function startDaemon(dir: string, configPath: string, entries: AccessLogEntry[]): Promise<{ daemon: Daemon; host: string }> {
  const { daemon, ready } = await Daemon.start({
    name: "docker-registry",
    command: "docker-registry",
    args: ["serve", configPath],
    readyLine: /listening on (127\.0\.0\.1:\d+)/,
    logFile: join(dir, "registry.log"),
    onStdoutLine: (line) => {
      const entry = parseAccessLogLine(line);
      if (entry) entries.push(entry);
    },
  });
  return { daemon, host: ready[1] };
}

async function registryConfig(dir: string, options: OriginRegistryOptions) {
  const auth = options.auth ?? { kind: "anonymous" };
  const config: Record<string, unknown> & { http: Record<string, unknown> } = {
    version: 0.1,
    log: { level: "info", formatter: "text", accesslog: { disabled: false } },
    storage: { filesystem: { rootdirectory: join(dir, "storage") }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } },
    http: { addr: "127.0.0.1:0", secret: randomBytes(16).toString("hex") },
  };
  if (auth.kind === "htpasswd") {
    const lines = await Promise.all(
      Object.entries(auth.users).map(async ([user, password]) => (await runCommand("htpasswd", ["-Bbn", user, password])).stdout.trim()),
    );
    const path = join(dir, "htpasswd");
    await writeFile(path, `${lines.join("\n")}\n`);
    config.auth = { htpasswd: { realm: "berth-test-origin", path } };
  } else if (auth.kind === "token") {
    config.auth = {
      token: {
        realm: auth.issuer.realm,
        service: auth.issuer.service,
        issuer: auth.issuer.issuer,
        rootcertbundle: auth.issuer.certificatePath,
      },
    };
  }
  if (options.foreignLayerUrls) config.validation = { manifests: { urls: { allow: [options.foreignLayerUrls] } } };
  if (options.proxy) {
    config.proxy = {
      remoteurl: options.proxy.remoteUrl,
      ...(options.proxy.username !== undefined ? { username: options.proxy.username, password: options.proxy.password ?? "" } : {}),
    };
  }
  return config;
}
