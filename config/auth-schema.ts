import proxyAddr from "proxy-addr";
import { z } from "zod";
import { duration } from "./duration.js";

const ACTIONS = ["pull", "push", "delete"] as const;
const ROLES = ["user", "node", "serviceaccount"] as const;

/** A Kubernetes namespace name (DNS label): what a tenant is called. */
const tenantName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "must be a DNS label (a Kubernetes namespace name)");

const wholeSeconds = (value: number) => value >= 1000 && value % 1000 === 0;

const accountSchema = z
  .object({
    username: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/, "must be 1-128 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit")
      .refine((name) => name !== "anonymous", "anonymous is reserved for requests without credentials")
      .describe("Login name; becomes the token subject (`sub`)."),
    passwordHash: z
      .string()
      .regex(/^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/, "must be a bcrypt hash, cost 04-31 (htpasswd -nbB USER PASSWORD | cut -d: -f2)")
      .describe("bcrypt hash of the password, as `htpasswd -B` writes it."),
    tenant: tenantName.optional().describe("Tenant the account acts for (policy rules can select it)."),
  })
  .strict();

const policyRuleSchema = z
  .object({
    subjects: z.array(z.string().min(1)).optional().describe("Token subjects: usernames, or system:serviceaccount:NAMESPACE:NAME."),
    tenants: z.array(tenantName).optional().describe("Tenants (static accounts' tenant, a service account's namespace)."),
    roles: z.array(z.enum(ROLES)).optional().describe("user (auth.users), node (auth.nodes), serviceaccount (Kubernetes tokens)."),
    anonymous: z.boolean().default(false).describe("true: the rule applies to every request, with or without credentials."),
    repositories: z
      .array(z.string().min(1))
      .default([])
      .describe("Repository globs: * matches within one path component, ** across components, ? one character; {tenant} is the principal's tenant."),
    actions: z.array(z.enum(ACTIONS)).default([]).describe("Actions granted on those repositories: pull, push, delete."),
    catalog: z.boolean().default(false).describe("Also grant registry:catalog:* (list every hosted repository)."),
  })
  .strict()
  .refine((rule) => rule.anonymous || rule.subjects !== undefined || rule.tenants !== undefined || rule.roles !== undefined, {
    message: "a rule needs anonymous: true or at least one of subjects, tenants, roles",
  });

export const authSchema = z
  .object({
    mode: z
      .enum(["none", "token"])
      .default("none")
      .describe("none: anyone may pull and push (a laptop or a trusted node). token: every /v2/ request needs a berth token from /token."),
    token: z
      .object({
        service: z.string().min(1).default("berth").describe("Service name: the `service` of challenges and the `aud` of tokens."),
        issuer: z.string().min(1).default("berth").describe("The `iss` of berth's tokens."),
        publicUrl: z
          .url({ protocol: /^https?$/ })
          .optional()
          .describe("URL clients reach berth at; the challenge realm is PUBLICURL/token. Default: http://<request Host>."),
        lifetime: duration("5m")
          .refine(wholeSeconds, "must be a whole number of seconds, at least 1s")
          .describe("Lifetime of access tokens. Clients treat anything below 60s as 60s, so keep it at least 1m outside tests."),
        refreshLifetime: duration("10m")
          .refine(wholeSeconds, "must be a whole number of seconds, at least 1s")
          .describe("Lifetime of refresh tokens (access_type=offline): the credentials the kubelet plugin and docker helper hand out."),
        algorithm: z.enum(["ES256", "RS256"]).default("ES256").describe("Signing algorithm of generated keys."),
        keyRotation: duration("720h").describe("Age after which a generated signing key is replaced; 0 = never. Older keys keep verifying until their tokens expire."),
        signingKeyFile: z
          .string()
          .optional()
          .describe("PEM private key (EC P-256 or RSA) to sign with, instead of keys generated under STORAGE/auth/keys."),
        verificationKeyFiles: z
          .array(z.string())
          .default([])
          .describe("PEM keys (public or private) whose tokens stay valid: the previous signingKeyFile during a rotation."),
      })
      .strict()
      .prefault({}),
    passwordChecks: z
      .object({
        threads: z
          .number()
          .int()
          .min(1)
          .max(64)
          .default(1)
          .describe("bcrypt checks running at once, each on a worker thread of its own: the event loop that serves pulls never runs one."),
        queue: z
          .number()
          .int()
          .min(0)
          .default(16)
          .describe("Password checks waiting for a thread; one more is answered 503 UNAVAILABLE with Retry-After at once."),
      })
      .strict()
      .prefault({})
      .describe("How much bcrypt work password logins at /token may cost."),
    passwordAttempts: z
      .object({
        window: duration("1m")
          .refine(wholeSeconds, "must be a whole number of seconds, at least 1s")
          .describe("The period the budgets below count failed password attempts over."),
        perClient: z
          .number()
          .int()
          .min(1)
          .default(10)
          .describe("Failed password attempts one client may make per window; then its password attempts are answered 429 TOOMANYREQUESTS with Retry-After."),
        perAccount: z
          .number()
          .int()
          .min(1)
          .default(30)
          .describe("Failed password attempts per username per window, from clients that have not logged in as it in the last 7 days."),
        trustedProxies: z
          .array(
            z.string().refine((entry) => {
              try {
                proxyAddr.compile(entry);
                return true;
              } catch {
                return false;
              }
            }, "must be an IP address, a CIDR (10.0.0.0/8) or loopback, linklocal, uniquelocal"),
          )
          .default([])
          .describe("Reverse proxies whose X-Forwarded-For names the client; without them a client is its connection's address."),
      })
      .strict()
      .prefault({})
      .describe("Budgets of failed password attempts at /token."),
    users: z.array(accountSchema).default([]).describe("People and CI: static accounts with bcrypt passwords."),
    nodes: z.array(accountSchema).default([]).describe("Node credentials used by the kubelet plugin and the docker helper (role node)."),
    serviceAccounts: z
      .object({
        issuer: z.string().min(1).describe("The cluster's service-account issuer (`iss` of its tokens)."),
        audiences: z.array(z.string().min(1)).min(1).default(["berth"]).describe("Accepted `aud` values (kubelet tokenAttributes.serviceAccountTokenAudience)."),
        jwksFile: z.string().optional().describe("File holding the issuer's JWKS (kubectl get --raw /openid/v1/jwks)."),
        jwksUrl: z.url({ protocol: /^https?$/ }).optional().describe("URL of the issuer's JWKS."),
        jwksRefresh: duration("5m").describe("How long a fetched or read JWKS is used before it is read again."),
      })
      .strict()
      .refine((sa) => (sa.jwksFile === undefined) !== (sa.jwksUrl === undefined), { message: "give exactly one of jwksFile, jwksUrl" })
      .optional()
      .describe("Accept Kubernetes service-account tokens as credentials; the token's namespace is the tenant."),
    policy: z.array(policyRuleSchema).default([]).describe("Who may do what. Nothing is allowed that no rule grants."),
  })
  .strict()
  .superRefine((auth, ctx) => {
    const seen = new Set<string>();
    for (const [list, accounts] of [["users", auth.users], ["nodes", auth.nodes]] as const) {
      accounts.forEach((account, index) => {
        if (seen.has(account.username)) ctx.addIssue({ code: "custom", path: [list, index, "username"], message: `${account.username} is configured twice` });
        seen.add(account.username);
      });
    }
  })
  .prefault({});

export type AuthConfig = z.output<typeof authSchema>;
export type PolicyRuleConfig = AuthConfig["policy"][number];
