import { createHash } from "node:crypto";
import { Agent, request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { runCommand } from "../../test/support/command.js";
import { measureLoad, type LoadResult } from "../http-load.js";
import { OpenResources } from "../open-resources.js";
import { QuietBerth } from "../quiet-berth.js";
import { ratio } from "../report.js";
import type { Scenario } from "../scenario.js";

/** Requests sent at once. */
const BURST = 200;
/** How often a burst starts, or once the last one is answered if that takes longer. */
const BURST_PERIOD_MS = 1000;
const USER = { username: "ci", password: "bench-secret" };
const MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";

interface Flood {
  name: string;
  path: string;
  /** `Authorization` headers the flood cycles through. */
  logins: string[];
  /** `X-Forwarded-For` values it cycles through (berth trusts loopback's): as many clients as addresses. */
  forwardedFor: string[];
}

const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
/** RFC 2544's benchmarking range: 198.18.0.0/15. */
const spreadAddresses = Array.from({ length: 1000 }, (_, i) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`);
const unknownUsers = Array.from({ length: 1000 }, (_, i) => basic(`bench-user-${i}`, "guess"));

const LOGIN = "/token?service=berth&scope=repository:bench/small:pull";
const FLOODS: Flood[] = [
  // What any flood of cheap requests costs: no password, no token, a 401 challenge.
  { name: "reference: GET /v2/ without credentials (401, no password)", path: "/v2/", logins: [], forwardedFor: [] },
  { name: "one address, wrong password for a real account (htpasswd -B, cost 5)", path: LOGIN, logins: [basic(USER.username, "wrong")], forwardedFor: [] },
  { name: "one address, 1,000 unknown usernames", path: LOGIN, logins: unknownUsers, forwardedFor: [] },
  { name: "1,000 addresses (X-Forwarded-For), 1,000 unknown usernames", path: LOGIN, logins: unknownUsers, forwardedFor: spreadAddresses },
];

/**
 * A manifest GET's latency (one client, back to back) while bursts of 200 concurrent bad
 * password logins hit /token (a burst a second, or as soon as the last is answered), against the
 * same GET with /token idle. `BENCH_BERTH_MAIN` runs it against another build (before/after).
 */
export const loginFlood: Scenario = {
  name: "login-flood",
  description: "manifest GET latency during bursts of 200 concurrent bad logins at /token, against idle",
  async run({ sizes, workDir, progress }) {
    const open = new OpenResources();
    try {
      const { stdout } = await runCommand("htpasswd", ["-nbB", USER.username, USER.password]);
      const auth = {
        mode: "token",
        token: { lifetime: "1h" },
        users: [{ username: USER.username, passwordHash: stdout.trim().split(":")[1] }],
        policy: [{ subjects: [USER.username], repositories: ["bench/**"], actions: ["pull", "push"] }],
      };
      // A build without password attempt budgets refuses the key: it then trusts no proxy, and the
      // spread flood is the same as the one-address one there.
      let settings: Record<string, unknown> = { auth: { ...auth, passwordAttempts: { trustedProxies: ["loopback"] } } };
      /** A fresh berth (budgets unspent) holding bench/small:v1, and a token to pull it. */
      const prepare = async () => {
        const berth = await QuietBerth.start(undefined, settings).catch(() => {
          progress("this build has no auth.passwordAttempts: X-Forwarded-For is not read");
          settings = { auth };
          return QuietBerth.start(undefined, settings);
        });
        open.keep(berth);
        return { berth, manifestUrl: await pushManifest(berth.url), pullToken: await token(berth.url, "repository:bench/small:pull") };
      };
      const probe = (target: { manifestUrl: string; pullToken: string }, during: string) => {
        progress(`manifest GETs: ${during}`);
        return measureLoad(target.manifestUrl, {
          method: "GET",
          headers: { Accept: MANIFEST_TYPE, Authorization: `Bearer ${target.pullToken}` },
          connections: 1,
          durationSeconds: sizes.loadSeconds,
          scratchDir: workDir,
          timeoutSeconds: 60,
        });
      };

      const quiet = await prepare();
      const idle = await probe(quiet, "/token idle");
      await open.close(quiet.berth);
      const rows: string[][] = [row("none (/token idle)", idle, idle, sizes.loadSeconds)];
      for (const flood of FLOODS) {
        const target = await prepare();
        const stop = new AbortController();
        const bursts = sendBursts(target.berth.url, flood, stop.signal);
        await sleep(2000);
        const during = await probe(target, flood.name);
        stop.abort();
        rows.push(row(flood.name, during, idle, sizes.loadSeconds, await bursts));
        await open.close(target.berth);
      }
      return {
        tables: [
          {
            title: `Manifest GET during bursts of ${BURST} concurrent bad logins at /token (one a second, or once the last is answered): one client's latency (wrk -c1, ${sizes.loadSeconds} s per cell)`,
            columns: ["during", "GET p50 ms", "GET p99 ms", "GET req/s", "p50 ÷ idle", "p99 ÷ idle", "burst requests answered, by status"],
            rows,
          },
        ],
        targets: [],
        memory: [],
      };
    } finally {
      await open.closeAll();
    }
  },
};

function row(name: string, during: LoadResult, idle: LoadResult, seconds: number, answered?: Map<number, number>): string[] {
  const statuses = answered ? [...answered].sort(([a], [b]) => a - b).map(([status, count]) => `${count} × ${status}`).join(", ") : "—";
  // wrk reports no latency when not one GET was answered during the cell.
  if (during.requestsPerSecond === 0) {
    const floor = seconds * 1000;
    return [name, `> ${floor}`, `> ${floor}`, "0", `> ${ratio(floor, idle.p50Ms)}`, `> ${ratio(floor, idle.p99Ms)}`, statuses];
  }
  const errors = during.errors > 0 ? ` (${during.errors} errors)` : "";
  return [name, during.p50Ms.toFixed(2), during.p99Ms.toFixed(2), `${during.requestsPerSecond.toFixed(0)}${errors}`, ratio(during.p50Ms, idle.p50Ms), ratio(during.p99Ms, idle.p99Ms), statuses];
}

/** Sends the flood's bursts until `stop` aborts, then waits for the burst in flight; counts answers by status. */
async function sendBursts(baseUrl: string, flood: Flood, stop: AbortSignal): Promise<Map<number, number>> {
  const agent = new Agent({ keepAlive: true, maxSockets: BURST });
  const answered = new Map<number, number>();
  let sent = 0;
  const send = () =>
    new Promise<void>((resolve) => {
      const n = sent++;
      const headers: Record<string, string> = {};
      if (flood.logins.length > 0) headers.authorization = flood.logins[n % flood.logins.length];
      if (flood.forwardedFor.length > 0) headers["x-forwarded-for"] = flood.forwardedFor[n % flood.forwardedFor.length];
      const req = request(`${baseUrl}${flood.path}`, { agent, headers }, (res) => {
        res.resume();
        res.on("end", () => {
          answered.set(res.statusCode!, (answered.get(res.statusCode!) ?? 0) + 1);
          resolve();
        });
      });
      req.on("error", () => {
        answered.set(0, (answered.get(0) ?? 0) + 1);
        resolve();
      });
      req.end();
    });
  try {
    while (!stop.aborted) {
      const started = Date.now();
      await Promise.all(Array.from({ length: BURST }, send));
      const rest = started + BURST_PERIOD_MS - Date.now();
      if (rest > 0 && !stop.aborted) await sleep(rest, undefined, { signal: stop }).catch(() => {});
    }
    return answered;
  } finally {
    agent.destroy();
  }
}

async function token(baseUrl: string, scope: string): Promise<string> {
  const res = await fetch(`${baseUrl}/token?service=berth&scope=${encodeURIComponent(scope)}`, { headers: { Authorization: basic(USER.username, USER.password) } });
  const body = (await res.json()) as { token?: string };
  if (res.status !== 200 || !body.token) throw new Error(`GET /token: ${res.status} ${JSON.stringify(body)}`);
  return body.token;
}

/** Pushes a config blob and a manifest naming it to bench/small:v1; returns the manifest's URL. */
async function pushManifest(baseUrl: string): Promise<string> {
  const authorization = `Bearer ${await token(baseUrl, "repository:bench/small:pull,push")}`;
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
  const digest = `sha256:${createHash("sha256").update(config).digest("hex")}`;
  const blob = await fetch(`${baseUrl}/v2/bench/small/blobs/uploads/?digest=${digest}`, {
    method: "POST",
    headers: { Authorization: authorization, "Content-Type": "application/octet-stream" },
    body: config,
  });
  if (blob.status !== 201) throw new Error(`blob push: ${blob.status} ${await blob.text()}`);
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST_TYPE, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest, size: config.length }, layers: [] });
  const url = `${baseUrl}/v2/bench/small/manifests/v1`;
  const put = await fetch(url, { method: "PUT", headers: { Authorization: authorization, "Content-Type": MANIFEST_TYPE }, body: manifest });
  if (put.status !== 201) throw new Error(`manifest push: ${put.status} ${await put.text()}`);
  return url;
}
