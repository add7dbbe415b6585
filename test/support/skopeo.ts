import { runCommand, type CommandResult } from "./command.js";

/** Options shared by every skopeo command. */
export interface SkopeoGlobalOptions {
  /**
   * A registries.conf (mirrors, prefixes). skopeo ignores CONTAINERS_REGISTRIES_CONF, so
   * it is passed as `--registries-conf`; default /dev/null, so the host's file never applies.
   */
  registriesConf?: string;
  /** Platform choice for a multi-arch source when copying without `all` or inspecting. */
  overrideOs?: string;
  overrideArch?: string;
  overrideVariant?: string;
}

export interface SkopeoCopyOptions extends SkopeoGlobalOptions {
  /** `--all`: copy every image of an index / manifest list, not just one platform's. */
  all?: boolean;
  /** `--preserve-digests`: fail rather than change any manifest (skopeo otherwise may convert). */
  preserveDigests?: boolean;
  /** Require HTTPS; default false, since every test registry is plain HTTP on loopback. */
  srcTlsVerify?: boolean;
  destTlsVerify?: boolean;
  /** `USER:PASSWORD`. skopeo sends them to the primary registry only, never to a mirror. */
  srcCreds?: string;
  destCreds?: string;
  /** An auth.json (`{"auths": {HOST: {"auth": base64(user:pass)}}}`), the only way to give a mirror credentials. */
  authfile?: string;
}

export interface SkopeoInspectOptions extends SkopeoGlobalOptions {
  tlsVerify?: boolean;
  creds?: string;
  authfile?: string;
}

/** `skopeo copy SOURCE DESTINATION` (e.g. `oci:DIR:TAG` → `docker://HOST/REPO:TAG`); rejects with skopeo's stderr on failure. */
export function skopeoCopy(source: string, destination: string, options: SkopeoCopyOptions = {}): Promise<CommandResult> {
  const args = [...globalArgs(options), "copy", "--quiet"];
  if (options.all) args.push("--all");
  if (options.preserveDigests) args.push("--preserve-digests");
  if (source.startsWith("docker://")) args.push(`--src-tls-verify=${options.srcTlsVerify ?? false}`);
  if (destination.startsWith("docker://")) args.push(`--dest-tls-verify=${options.destTlsVerify ?? false}`);
  if (options.srcCreds !== undefined) args.push("--src-creds", options.srcCreds);
  if (options.destCreds !== undefined) args.push("--dest-creds", options.destCreds);
  if (options.authfile !== undefined) args.push("--authfile", options.authfile);
  args.push(source, destination);
  return runCommand("skopeo", args);
}

/** `skopeo inspect --raw`: the manifest or index bytes exactly as the registry served them. */
export async function skopeoInspectRaw(reference: string, options: SkopeoInspectOptions = {}): Promise<Buffer> {
  const args = [...globalArgs(options), "inspect", "--raw"];
  if (reference.startsWith("docker://")) args.push(`--tls-verify=${options.tlsVerify ?? false}`);
  if (options.creds !== undefined) args.push("--creds", options.creds);
  if (options.authfile !== undefined) args.push("--authfile", options.authfile);
  args.push(reference);
  return Buffer.from((await runCommand("skopeo", args)).stdout, "utf8");
}

function globalArgs(options: SkopeoGlobalOptions): string[] {
  const args = ["--insecure-policy", "--registries-conf", options.registriesConf ?? "/dev/null"];
  if (options.overrideOs) args.push("--override-os", options.overrideOs);
  if (options.overrideArch) args.push("--override-arch", options.overrideArch);
  if (options.overrideVariant) args.push("--override-variant", options.overrideVariant);
  return args;
}
