import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { BerthConfig } from "../config/schema.js";
import { setUpAuth } from "./auth/setup.js";
import { createApp } from "./http/app.js";
import { createTokenRoutes } from "./http/token-routes.js";
import type { Logger } from "./log.js";
import { HostedRegistry } from "./registry/hosted-registry.js";
import { openFilesystemStorage, type Storage } from "./storage/storage.js";

/** A running berth: its HTTP server, storage, and how to stop it. */
export interface Berth {
  server: Server;
  storage: Storage;
  url: string;
  close(): Promise<void>;
}

export async function startBerth(config: BerthConfig, log: Logger): Promise<Berth> {
  const storage = await openFilesystemStorage(config.storage.root);
  const auth = await setUpAuth(config);
  const registry = new HostedRegistry(storage);
  let closing = false;
  const app = createApp({
    registry,
    access: auth.access,
    ...(auth.tokenService ? { tokenRoutes: createTokenRoutes(auth.tokenService, log) } : {}),
    log,
    ready: async () => {
      if (closing) return false;
      await storage.driver.probeWritable();
      return true;
    },
  });
  const server = createServer(app);
  const [host, port] = splitHostPort(config.listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  return {
    server,
    storage,
    url,
    close: async () => {
      closing = true;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export function splitHostPort(listen: string): [string, number] {
  const index = listen.lastIndexOf(":");
  const host = listen.slice(0, index).replace(/^\[(.*)\]$/, "$1");
  return [host, Number(listen.slice(index + 1))];
}
