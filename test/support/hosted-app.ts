import { readdir } from "node:fs/promises";
import pino from "pino";
import supertest from "supertest";
import { OpenAccess, type AccessController } from "../../server/auth/access.js";
import { createApp } from "../../server/http/app.js";
import { HostedRegistry } from "../../server/registry/hosted-registry.js";
import type { Storage } from "../../server/storage/storage.js";
import { listenOnLoopback } from "./loopback-server.js";
import { openTestStorage, testStorageDriver, type TestStorage } from "./storage-drivers.js";

/**
 * berth's express app over hosted repositories in a fresh store (of the driver the test run
 * selects: testStorageDriver()), served on a loopback ephemeral port (supertest's own server
 * would listen on every interface).
 */
export interface HostedApp {
  /** Local storage root: a second app opened over the same store sees the same content. */
  readonly root: string;
  readonly storage: Storage;
  readonly url: string;
  /** A supertest client for this app. */
  request(): supertest.Agent;
  /** Every path the store holds (files and directories on disk; objects in a bucket). */
  storedPaths(): Promise<string[]>;
  /** Writes in flight left behind: temp files, spool files, unfinished multipart uploads. */
  leftovers(): Promise<string[]>;
  /** Stops serving; the store stays for `reopen` until `close`. */
  stop(): Promise<void>;
  /** A new app instance over the same store, as after a restart; this one stops serving. */
  reopen(): Promise<HostedApp>;
  /** Stops serving and removes the store. */
  close(): Promise<void>;
}

export interface HostedAppOptions {
  access?: AccessController;
}

export async function startHostedApp(options: HostedAppOptions = {}): Promise<HostedApp> {
  return serve(await openTestStorage(testStorageDriver()), options);
}

async function serve(store: TestStorage, options: HostedAppOptions): Promise<HostedApp> {
  const storage = store.storage;
  const app = createApp({
    registry: new HostedRegistry(storage),
    access: options.access ?? new OpenAccess(),
    log: pino({ level: "silent" }),
    ready: async () => true,
  });
  const { url, stop } = await listenOnLoopback(app);
  return {
    root: store.root,
    storage,
    url,
    request: () => supertest.agent(url),
    storedPaths: async () => {
      if (store.kind === "filesystem") return readdir(store.root, { recursive: true });
      const paths: string[] = [];
      for await (const object of storage.driver.walk("")) paths.push(object.path);
      return paths;
    },
    leftovers: () => store.leftovers(),
    stop,
    reopen: async () => {
      await stop();
      return serve(await store.reopen(), options);
    },
    close: async () => {
      await stop();
      await store.close();
    },
  };
}
