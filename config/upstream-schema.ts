import { z } from "zod";
import { duration } from "./duration.js";

const DOCKER_HUB_HOSTS = ["docker.io", "index.docker.io", "registry-1.docker.io"];

const KUBERNETES_ARCHITECTURES = ["amd64", "arm64", "arm", "ppc64le", "s390x", "386", "riscv64"];

export const archFallbackSchema = z
  .object({
    enabled: z.boolean().default(true).describe("Bridge the Kubernetes -$(ARCH) naming: name-<arch>:tag from name:tag's index, and name:tag from name-<arch>:tag tags."),
    architectures: z
      .array(z.string().regex(/^[a-z0-9]+$/))
      .default(KUBERNETES_ARCHITECTURES)
      .describe("Architectures probed, in order (Kubernetes/Go names)."),
  })
  .strict()
  .prefault({});

export type ArchFallbackConfig = z.output<typeof archFallbackSchema>;

export const tagPolicySchema = z
  .enum(["Always", "IfNotPresent", "Never"])
  .describe(
    "Always: revalidate every tag request with a HEAD. IfNotPresent: use a cached tag until tagTTL ends (0 = forever). Never: offline, serve only what is cached.",
  );

export const upstreamSchema = z
  .object({
    host: z
      .string()
      .regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, "must be a registry host, HOST or HOST:PORT")
      .describe("The registry host clients name, and what containerd sends as ?ns=."),
    url: z.url({ protocol: /^https?$/ }).optional().describe("Where berth fetches from; default https://HOST (docker.io: https://registry-1.docker.io)."),
    prefix: z
      .string()
      .regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, "must be one lowercase path component without ':'")
      .optional()
      .describe("Path prefix for registries.conf and curl mirrors: /v2/PREFIX/REPO/...; defaults to host when host has no port."),
    tagPolicy: tagPolicySchema.default("IfNotPresent"),
    tagTTL: duration("5m").describe("How long a resolved tag is trusted under IfNotPresent; 0 = forever."),
    credentials: z
      .array(z.string())
      .default([])
      .describe("Credential files for this upstream: docker config.json, .dockercfg, or dockerconfigjson/dockercfg Secret manifests."),
    archFallback: archFallbackSchema,
    tenantIsolation: z
      .boolean()
      .default(true)
      .describe("In auth mode token: what berth cached from a repository with one set of credentials (a tenant's own, or berth's) is served to a request with other credentials only after the upstream answered for that repository with them. false shares everything cached with every principal policy lets pull."),
    accessConfirmationTTL: duration("5m").describe("How long the upstream's answer for a repository with a set of credentials is trusted before it is asked again."),
    connectTimeout: duration("10s").describe("Longest wait to connect to the upstream."),
    readTimeout: duration("60s").describe("Longest wait for response headers, and between two chunks of a body; a body delivering less than 64 KiB per period is cut as stalled."),
  })
  .strict()
  .transform((upstream, ctx) => {
    const isDockerHub = DOCKER_HUB_HOSTS.includes(upstream.host);
    const host = isDockerHub ? "docker.io" : upstream.host;
    const prefix = upstream.prefix ?? (host.includes(":") ? undefined : host);
    if (prefix === undefined) {
      ctx.addIssue({ code: "custom", path: ["prefix"], message: `host ${host} has a port: give a colon-free prefix (skopeo and podman reject host:port path components)` });
      return z.NEVER;
    }
    const url = upstream.url ?? (isDockerHub ? "https://registry-1.docker.io" : `https://${host}`);
    return { ...upstream, host, prefix, url: url.replace(/\/+$/, ""), isDockerHub };
  });

export type UpstreamConfig = z.output<typeof upstreamSchema>;
export type TagPolicy = z.output<typeof tagPolicySchema>;

export const upstreamsSchema = z
  .array(upstreamSchema)
  .default([])
  .superRefine((upstreams, ctx) => {
    const seen = new Map<string, number>();
    upstreams.forEach((u, i) => {
      for (const key of [`host ${u.host}`, `prefix ${u.prefix}`]) {
        if (seen.has(key)) ctx.addIssue({ code: "custom", path: [i], message: `${key} is configured twice` });
        seen.set(key, i);
      }
    });
  })
  .describe("Registries berth mirrors.");
