/** An OCI platform: `os/architecture[/variant]`. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Architecture names as Kubernetes and Go spell them, in the order berth probes `-$(ARCH)` tags. */
export const KUBERNETES_ARCHITECTURES = ["amd64", "arm64", "arm", "ppc64le", "s390x", "386", "riscv64"] as const;

/** Go's default variants: an arm64 image without a variant is v8, an arm one v7. */
const DEFAULT_VARIANT: Record<string, string> = { arm64: "v8", arm: "v7" };

export function parsePlatform(text: string): Platform | undefined {
  const parts = text.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) return undefined;
  return { os: parts[0], architecture: parts[1], variant: parts[2] };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
}

/**
 * How well `candidate` serves `wanted`: undefined when it cannot, higher when closer.
 * OS and architecture must match; a variant matches its Go default when one side omits it.
 */
export function platformScore(wanted: Platform, candidate: Partial<Platform> | undefined): number | undefined {
  if (!candidate || candidate.os !== wanted.os || candidate.architecture !== wanted.architecture) return undefined;
  const defaultVariant = DEFAULT_VARIANT[wanted.architecture];
  const want = wanted.variant ?? defaultVariant;
  const have = candidate.variant ?? defaultVariant;
  if (want === have) return candidate.variant === wanted.variant ? 3 : 2;
  if (wanted.variant === undefined) return 1;
  return undefined;
}

/** The index entry that best serves `wanted`, skipping attestation entries (`unknown/unknown`). */
export function selectPlatform<T extends { platform?: Partial<Platform> }>(entries: T[], wanted: Platform): T | undefined {
  let best: T | undefined;
  let bestScore = 0;
  for (const entry of entries) {
    const score = platformScore(wanted, entry.platform);
    if (score !== undefined && score > bestScore) {
      best = entry;
      bestScore = score;
    }
  }
  return best;
}
