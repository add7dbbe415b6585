import { createHash, createPrivateKey, createPublicKey, sign, type KeyObject } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { runCommand } from "./command.js";
import { onProcessExit } from "./process-exit.js";
import { makeTempDir, type TempDir } from "./temp-dir.js";

export interface TokenIssuerOptions {
  /** The `service` (JWT audience) the registry is configured with. Default "berth-test-origin". */
  service?: string;
  /** The JWT `iss`. Default "berth-test-token-issuer". */
  issuer?: string;
  /** Accounts and passwords that may log in with Basic auth (GET) or an OAuth2 password grant (POST). */
  users?: Record<string, string>;
  /**
   * Which of the requested actions an account (undefined: anonymous) gets on a repository.
   * Default: a known account gets every action it asks for, anonymous gets none.
   */
  grant?: (account: string | undefined, repository: string, actions: string[]) => string[];
  /** Token lifetime in seconds (`expires_in`). Default 300. */
  lifetimeSeconds?: number;
}

/** A token request the issuer answered. */
export interface IssuedTokenRequest {
  method: string;
  /** The authenticated account, or undefined when anonymous. */
  account: string | undefined;
  /** Requested scopes, e.g. `repository:library/pause:pull`. */
  scopes: string[];
  /** The OAuth2 `grant_type` of a POST, undefined for GET. */
  grantType?: string;
  status: number;
}

interface GrantedAccess {
  type: string;
  name: string;
  actions: string[];
}

/**
 * A Docker-token-auth issuer for Distribution's `auth.token` mode, run inside the test: an
 * RSA key with a self-signed X.509 certificate (made with openssl) whose public key the
 * registry trusts through `rootcertbundle`, and an HTTP realm on loopback that answers
 * `GET /token` (Basic auth) and `POST /token` (OAuth2 password grant, as containerd sends)
 * with RS256 JWTs. The JWT header's `kid` is the libtrust fingerprint Distribution looks up.
 */
export class TokenIssuer {
  /** Every request, in order. */
  readonly requests: IssuedTokenRequest[] = [];
  readonly service: string;
  readonly issuer: string;

  private constructor(
    private readonly options: TokenIssuerOptions,
    private readonly dir: TempDir,
    private readonly server: Server,
    private readonly key: KeyObject,
    private readonly keyId: string,
    /** The PEM certificate to give the registry as `rootcertbundle`. */
    readonly certificatePath: string,
  ) {
    this.service = options.service ?? "berth-test-origin";
    this.issuer = options.issuer ?? "berth-test-token-issuer";
  }

  static async start(options: TokenIssuerOptions = {}): Promise<TokenIssuer> {
    const dir = await makeTempDir("token-issuer");
    try {
      const keyPath = join(dir.path, "key.pem");
      const certificatePath = join(dir.path, "cert.pem");
      await runCommand("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certificatePath, "-days", "2", "-subj", "/CN=berth-test-token-issuer"]);
      const key = createPrivateKey(await readFile(keyPath));
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", resolve);
      });
      const unregister = onProcessExit(() => server.close());
      server.once("close", unregister);
      const issuer = new TokenIssuer(options, dir, server, key, libtrustKeyId(createPublicKey(key)), certificatePath);
      server.on("request", (req, res) => {
        issuer.handle(req, res).catch((err: Error) => {
          res.statusCode = 500;
          res.end(err.message);
        });
      });
      return issuer;
    } catch (err) {
      await dir.remove();
      throw err;
    }
  }

  /** The realm URL for the registry's config and `WWW-Authenticate`. */
  get realm(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/token`;
  }

  /** Signs a token granting exactly `access`, e.g. to hand a client a token directly. */
  issueToken(account: string | undefined, access: GrantedAccess[], lifetimeSeconds = this.options.lifetimeSeconds ?? 300): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", kid: this.keyId };
    const claims = {
      iss: this.issuer,
      sub: account ?? "",
      aud: this.service,
      exp: now + lifetimeSeconds,
      nbf: now - 10,
      iat: now,
      jti: createHash("sha256").update(`${now}/${Math.random()}`).digest("hex").slice(0, 24),
      access,
    };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    return `${signingInput}.${base64url(sign("sha256", Buffer.from(signingInput), this.key))}`;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    await this.dir.remove();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://issuer");
    if (url.pathname !== "/token" || (req.method !== "GET" && req.method !== "POST")) {
      res.statusCode = 404;
      res.end();
      return;
    }
    let params = url.searchParams;
    let credentials = basicCredentials(req.headers.authorization);
    let grantType: string | undefined;
    if (req.method === "POST") {
      params = new URLSearchParams(await readBody(req));
      grantType = params.get("grant_type") ?? undefined;
      if (grantType === "password") credentials = { user: params.get("username") ?? "", password: params.get("password") ?? "" };
    }
    const scopes = params.getAll("scope").flatMap((scope) => scope.split(" ")).filter(Boolean);
    const users = this.options.users ?? {};
    const authenticated = credentials !== undefined && users[credentials.user] !== undefined && users[credentials.user] === credentials.password;
    const record = { method: req.method, account: authenticated ? credentials!.user : undefined, scopes, grantType };
    if (credentials !== undefined && !authenticated) {
      this.requests.push({ ...record, status: 401 });
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "wrong username or password" }] }));
      return;
    }
    const grant = this.options.grant ?? ((account, _repository, actions) => (account ? actions : []));
    const access = scopes.flatMap((scope): GrantedAccess[] => {
      const [type, ...rest] = scope.split(":");
      const actions = rest.pop()?.split(",") ?? [];
      const name = rest.join(":");
      const granted = type === "repository" ? grant(record.account, name, actions) : [];
      return granted.length > 0 ? [{ type, name, actions: granted }] : [];
    });
    const lifetime = this.options.lifetimeSeconds ?? 300;
    const token = this.issueToken(record.account, access, lifetime);
    this.requests.push({ ...record, status: 200 });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ token, access_token: token, expires_in: lifetime, issued_at: new Date().toISOString() }));
  }
}

/** libtrust's key ID, which Distribution matches against a JWT's `kid`: base32 of the first 240 bits of sha256(SPKI DER), in groups of four. */
function libtrustKeyId(publicKey: KeyObject): string {
  const hash = createHash("sha256").update(publicKey.export({ type: "spki", format: "der" })).digest().subarray(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const byte of hash) bits += byte.toString(2).padStart(8, "0");
  let encoded = "";
  for (let i = 0; i < bits.length; i += 5) encoded += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  return encoded.match(/.{4}/g)!.join(":");
}

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  if (!header?.toLowerCase().startsWith("basic ")) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
