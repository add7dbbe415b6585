import { randomBytes } from "node:crypto";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";
import supertest from "supertest";
import { coordinationSchema } from "../../config/coordination-schema.js";
import { storageSchema } from "../../config/storage-schema.js";
import { OpenAccess, type AccessController } from "../../server/auth/access.js";
import { createApp } from "../../server/http/app.js";
import { HostedRegistry } from "../../server/registry/hosted-registry.js";
import { openReplicaStorage, type ReplicaStorage } from "../../server/server.js";
import type { Storage } from "../../server/storage/storage.js";
import { listenOnLoopback, type LoopbackServer } from "./loopback-server.js";
import { RedisServer } from "./redis-server.js";
import { startRoundRobinProxy } from "./round-robin-proxy.js";
import { openTestStorage, s3Leftovers, testReplicas, testStorageDriver, type TestStorage } from "./storage-drivers.js";
import { createBucket, s3StorageConfig, swiftS3 } from "./swift-s3.js";
import { makeTempDir } from "./temp-dir.js";

/**
 * berth's express app over hosted repositories in a fresh store (of the driver the test run
 * selects: testStorageDriver()), served on a loopback ephemeral port (supertest's own server
 * would listen on every interface). Under testReplicas(), three such apps on one bucket and one
 * Redis, their storage shared as replicas share it, behind a proxy that sends each request to
 * the next of them.
 */
export interface HostedApp {
  /** Local storage root: a second app opened over the same store sees the same content. */
  readonly root: string;
  /** The store (with replicas, the first replica's view of it). */
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
  if (testReplicas()) return startReplicas(options);
  return serve(await openTestStorage(testStorageDriver()), options);
}

function listenHosted(storage: Storage, options: HostedAppOptions): Promise<LoopbackServer> {
  const app = createApp({
    registry: new HostedRegistry(storage),
    access: options.access ?? new OpenAccess(),
    log: pino({ level: "silent" }),
    ready: async () => true,
  });
  return listenOnLoopback(app);
}

async function serve(store: TestStorage, options: HostedAppOptions): Promise<HostedApp> {
  const storage = store.storage;
  const { url, stop } = await listenHosted(storage, options);
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

const REPLICAS = 3;

/** Three replicas' apps on a fresh bucket and a Redis of their own, behind a round-robin proxy. */
async function startReplicas(options: HostedAppOptions): Promise<HostedApp> {
  const endpoint = await swiftS3();
  const bucket = await createBucket(endpoint);
  const redis = await RedisServer.start();
  const dir = await makeTempDir("hosted-replicas");
  const secretFile = join(dir.path, "internal-secret");
  await writeFile(secretFile, randomBytes(24).toString("hex"), { mode: 0o600 });
  const roots = Array.from({ length: REPLICAS }, (_, i) => join(dir.path, `replica-${i}`));
  const log = pino({ level: "silent" });
  const open = () =>
    Promise.all(
      roots.map((root, i) =>
        openReplicaStorage(
          {
            storage: storageSchema.parse({ driver: "s3", root, s3: s3StorageConfig(endpoint, bucket) }),
            coordination: coordinationSchema.parse({ redis: { url: redis.url }, replicaId: `replica-${i}`, internal: { listen: "127.0.0.1:0", secretFile } }),
          },
          log,
        ),
      ),
    );
  const serveAll = async (stores: ReplicaStorage[]): Promise<HostedApp> => {
    const servers = await Promise.all(stores.map((store) => listenHosted(store.storage, options)));
    const proxy = await startRoundRobinProxy(servers.map((server) => server.url));
    const stop = async () => {
      await proxy.stop();
      await Promise.all(servers.map((server) => server.stop()));
    };
    const closeStores = () => Promise.all(stores.map((store) => store.close()));
    const storage = stores[0].storage;
    return {
      root: roots[0],
      storage,
      url: proxy.url,
      request: () => supertest.agent(proxy.url),
      storedPaths: async () => {
        const paths: string[] = [];
        for await (const object of storage.driver.walk("")) paths.push(object.path);
        return paths;
      },
      leftovers: () => s3Leftovers(bucket, roots),
      stop,
      reopen: async () => {
        await stop();
        await closeStores();
        return serveAll(await open());
      },
      close: async () => {
        await stop();
        await closeStores();
        await redis.close();
        await dir.remove();
      },
    };
  };
  return serveAll(await open());
}
