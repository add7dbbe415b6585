import pino from "pino";
import supertest from "supertest";
import { OpenAccess, type AccessController } from "../../server/auth/access.js";
import { createApp } from "../../server/http/app.js";
import { HostedRegistry } from "../../server/registry/hosted-registry.js";
import { openFilesystemStorage, type Storage } from "../../server/storage/storage.js";
import { makeTempDir, type TempDir } from "./temp-dir.js";
import { listenOnLoopback } from "./loopback-server.js";

/**
 * berth's express app over hosted repositories in a temp-dir store, served on a loopback
 * ephemeral port (supertest's own server would listen on every interface).
 */
export interface HostedApp {
  /** Storage root: a second app opened over it sees the same content. */
  readonly root: string;
  readonly storage: Storage;
  readonly url: string;
  /** A supertest client for this app. */
  request(): supertest.Agent;
  /** Stops serving; the storage root stays for `reopen` until `close`. */
  stop(): Promise<void>;
  /** A new app instance over the same root, as after a restart; this one stops serving. */
  reopen(): Promise<HostedApp>;
  /** Stops serving and removes the storage root. */
  close(): Promise<void>;
}

export interface HostedAppOptions {
  access?: AccessController;
}

export async function startHostedApp(options: HostedAppOptions = {}): Promise<HostedApp> {
  const dir = await makeTempDir("hosted");
  return serve(dir, options);
}

async function serve(dir: TempDir, options: HostedAppOptions): Promise<HostedApp> {
  const storage = await openFilesystemStorage(dir.path);
  const app = createApp({
    registry: new HostedRegistry(storage),
    access: options.access ?? new OpenAccess(),
    log: pino({ level: "silent" }),
    ready: async () => true,
  });
  const { url, stop } = await listenOnLoopback(app);
  return {
    root: dir.path,
    storage,
    url,
    request: () => supertest.agent(url),
    stop,
    reopen: async () => {
      await stop();
      return serve(dir, options);
    },
    close: async () => {
      await stop();
      await dir.remove();
    },
  };
}
