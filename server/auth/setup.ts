import { join } from "node:path";
import { RateLimiterMemory } from "rate-limiter-flexible";
import type { BerthConfig } from "../../config/schema.js";
import { ConfigError } from "../../config/load.js";
import { OpenAccess, type AccessController } from "./access.js";
import { Accounts } from "./accounts.js";
import { BcryptPool } from "./bcrypt-pool.js";
import { PasswordAttempts } from "./password-attempts.js";
import { Policy, type PolicyNames } from "./policy.js";
import { ServiceAccountTokens } from "./service-accounts.js";
import { KeyDirectory, type GeneratedKeyStore } from "./generated-keys.js";
import { KeyRing } from "./signing-keys.js";
import { TokenAccess } from "./token-access.js";
import { TokenService } from "./token-service.js";
import { BerthTokens } from "./tokens.js";

/** What the HTTP layer needs from auth: the /v2/ gate, and the token service when there is one. */
export interface Auth {
  access: AccessController;
  /** Present in `token` mode: serves /token. */
  tokenService?: TokenService;
  /** Ends the bcrypt threads. */
  close(): Promise<void>;
}

/** A client that logged in as an account is exempt from that account's attempt budget this long. */
const PROVEN_CLIENT_SECONDS = 7 * 24 * 3600;

/**
 * Builds auth for `auth.mode`. `now` (ms) is injectable so tests can move time; `policyNames`
 * is the registry's routing of names without `?ns=` (see Policy.grant); `keyStore` where
 * generated signing keys are kept (default: a directory under the storage root).
 */
export async function setUpAuth(config: BerthConfig, now: () => number = Date.now, policyNames?: PolicyNames, keyStore?: GeneratedKeyStore): Promise<Auth> {
  const auth = config.auth;
  if (auth.mode === "none") return { access: new OpenAccess(), close: async () => {} };

  const { token } = auth;
  if (auth.serviceAccounts && auth.serviceAccounts.issuer === token.issuer) {
    throw new ConfigError(`auth.serviceAccounts.issuer must differ from auth.token.issuer (${token.issuer})`);
  }
  const keys = await KeyRing.open({
    algorithm: token.algorithm,
    store: keyStore ?? new KeyDirectory(join(config.storage.root, "auth", "keys")),
    signingKeyFile: token.signingKeyFile,
    verificationKeyFiles: token.verificationKeyFiles,
    rotationMs: token.keyRotation,
    retentionMs: Math.max(token.lifetime, token.refreshLifetime),
    now,
  });
  const tokens = new BerthTokens(keys, {
    issuer: token.issuer,
    service: token.service,
    lifetimeSeconds: token.lifetime / 1000,
    refreshLifetimeSeconds: token.refreshLifetime / 1000,
    now,
  });
  const policy = new Policy(auth.policy, policyNames);
  const serviceAccounts = auth.serviceAccounts && new ServiceAccountTokens({ ...auth.serviceAccounts, refreshMs: auth.serviceAccounts.jwksRefresh, now });
  const bcrypt = new BcryptPool({ threads: auth.passwordChecks.threads, queue: auth.passwordChecks.queue });
  const accounts = await Accounts.open(auth.users, auth.nodes, bcrypt);
  const { window, perClient, perAccount, trustedProxies } = auth.passwordAttempts;
  const passwordAttempts = new PasswordAttempts(
    {
      byClient: new RateLimiterMemory({ keyPrefix: "client", points: perClient, duration: window / 1000 }),
      byAccount: new RateLimiterMemory({ keyPrefix: "account", points: perAccount, duration: window / 1000 }),
      proven: new RateLimiterMemory({ keyPrefix: "proven", points: 1, duration: PROVEN_CLIENT_SECONDS }),
    },
    { trustedProxies, provenForSeconds: PROVEN_CLIENT_SECONDS },
  );
  return {
    access: new TokenAccess(tokens, policy, { service: token.service, publicUrl: token.publicUrl }),
    tokenService: new TokenService({ service: token.service, tokens, keys, accounts, passwordAttempts, serviceAccounts, policy }),
    close: () => bcrypt.close(),
  };
}
