import { createPublicKey, type KeyObject } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import bcrypt from "bcryptjs";
import jwt from "jsonwebtoken";
import pino from "pino";
import supertest from "supertest";
import { parseConfig } from "../../config/load.js";
import { setUpAuth, type Auth } from "../../server/auth/setup.js";
import { createApp } from "../../server/http/app.js";
import { createTokenRoutes } from "../../server/http/token-routes.js";
import { HostedRegistry } from "../../server/registry/hosted-registry.js";
import { openFilesystemStorage } from "../../server/storage/storage.js";
import { makeTempDir, type TempDir } from "../support/temp-dir.js";
import { listenOnLoopback } from "../support/loopback-server.js";
import type { TokenResponse } from "../../server/auth/token-service.js";

/** A clock the auth code reads; tests move it instead of sleeping. */
export class TestClock {
  ms = Date.now();
  readonly now = () => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/** bcrypt at the lowest cost: the format `htpasswd -B` writes, quick enough for tests. */
export function bcryptHash(password: string): string {
  return bcrypt.hashSync(password, 4);
}

/**
 * berth's express app in `auth.mode: token` over hosted repositories, on a loopback ephemeral
 * port, with a clock the test controls. Built the way server.ts builds it (setUpAuth,
 * createTokenRoutes, createApp), minus the mirrors.
 */
export interface TokenBerth {
  readonly url: string;
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** The storage root: blobs, metadata and `auth/keys/`. */
  readonly root: string;
  readonly clock: TestClock;
  readonly auth: Auth;
  request(): supertest.Agent;
  /** A new app over the same storage root and clock, as after a restart (this one stops). */
  reopen(authConfig?: Record<string, unknown>): Promise<TokenBerth>;
  close(): Promise<void>;
}

export async function startTokenBerth(authConfig: Record<string, unknown>, clock = new TestClock()): Promise<TokenBerth> {
  return serve(await makeTempDir("auth"), authConfig, clock);
}

async function serve(dir: TempDir, authConfig: Record<string, unknown>, clock: TestClock): Promise<TokenBerth> {
  const config = parseConfig({ storage: { root: dir.path }, auth: { mode: "token", ...authConfig } }, "test config");
  const storage = await openFilesystemStorage(dir.path);
  const auth = await setUpAuth(config, clock.now);
  const log = pino({ level: "silent" });
  const app = createApp({
    registry: new HostedRegistry(storage),
    access: auth.access,
    log,
    ready: async () => true,
    tokenRoutes: createTokenRoutes(auth.tokenService!, log),
  });
  const { url, stop } = await listenOnLoopback(app);
  return {
    url,
    host: new URL(url).host,
    root: dir.path,
    clock,
    auth,
    request: () => supertest.agent(url),
    reopen: async (next = authConfig) => {
      await stop();
      await auth.close();
      return serve(dir, next, clock);
    },
    close: async () => {
      await stop();
      await auth.close();
      await dir.remove();
    },
  };
}


/** GET /token with Basic credentials (or none) and repeated scopes; expects 200. */
export async function getToken(berth: TokenBerth, scopes: string[], credentials?: { username: string; password: string }): Promise<TokenResponse> {
  const query = new URLSearchParams([["service", "berth"], ...scopes.map((s) => ["scope", s])]);
  const request = berth.request().get(`/token?${query}`);
  if (credentials) request.auth(credentials.username, credentials.password);
  const res = await request;
  if (res.status !== 200) throw new Error(`GET /token answered ${res.status}: ${res.text}`);
  return res.body as TokenResponse;
}

/** The JWT's header and claims, unverified (the test inspects what berth signed). */
export function decodeToken(token: string): { header: jwt.JwtHeader; payload: jwt.JwtPayload } {
  const decoded = jwt.decode(token, { complete: true });
  if (!decoded || typeof decoded.payload === "string") throw new Error("not a JWT");
  return { header: decoded.header, payload: decoded.payload };
}

/** The private keys berth generated under its storage root, by file name. */
export async function generatedKeys(root: string): Promise<{ file: string; pem: string }[]> {
  const dir = join(root, "auth", "keys");
  const names = (await readdir(dir)).filter((n) => n.endsWith(".pem")).sort();
  return Promise.all(names.map(async (file) => ({ file, pem: await readFile(join(dir, file), "utf8") })));
}

/** The public key of a JWKS entry. */
export function jwkKey(jwk: Record<string, unknown>): KeyObject {
  return createPublicKey({ key: jwk as import("node:crypto").JsonWebKey, format: "jwk" });
}

/** Every file under a root with its size and modification time: equal snapshots mean nothing was written. */
export async function storageSnapshot(root: string): Promise<string[]> {
  const entries: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const info = await stat(path);
      entries.push(`${relative(root, path)} ${entry.isDirectory() ? "dir" : info.size} ${info.mtimeMs}`);
      if (entry.isDirectory()) await walk(path);
    }
  };
  await walk(root);
  return entries.sort();
}
