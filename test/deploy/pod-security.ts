/**
 * The Pod Security Standards' controls (https://kubernetes.io/docs/concepts/security/pod-security-standards/,
 * as Pod Security admission enforces them in Kubernetes 1.26), over a pod spec and its
 * metadata. Each check returns the name of the control a pod breaks, as the standard names it.
 */

type Spec = Record<string, any>;

export type Level = "privileged" | "baseline" | "restricted";

/** Capabilities baseline lets a container add. */
const BASELINE_CAPABILITIES = new Set(["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]);
const SAFE_SYSCTLS = new Set(["kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range"]);
const SELINUX_TYPES = new Set(["", "container_t", "container_init_t", "container_kvm_t"]);
const RESTRICTED_VOLUMES = new Set(["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"]);

function containersOf(spec: Spec): Spec[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
}

/**
 * The ports a pod really has: on the host's network the API server defaults each port's
 * hostPort to its containerPort (SetDefaults_PodSpec), which the Host Ports control then sees.
 */
function portsOf(spec: Spec, container: Spec): Spec[] {
  return (container.ports ?? []).map((port: Spec) => (spec.hostNetwork && port.hostPort === undefined ? { ...port, hostPort: port.containerPort } : port));
}

const BASELINE: [string, (spec: Spec, metadata: Spec) => boolean][] = [
  ["HostProcess", (spec) => [spec.securityContext, ...containersOf(spec).map((c) => c.securityContext)].some((s) => s?.windowsOptions?.hostProcess === true)],
  ["Host Namespaces", (spec) => spec.hostNetwork === true || spec.hostPID === true || spec.hostIPC === true],
  ["Privileged Containers", (spec) => containersOf(spec).some((c) => c.securityContext?.privileged === true)],
  ["Capabilities", (spec) => containersOf(spec).some((c) => (c.securityContext?.capabilities?.add ?? []).some((cap: string) => !BASELINE_CAPABILITIES.has(cap)))],
  ["HostPath Volumes", (spec) => (spec.volumes ?? []).some((v: Spec) => v.hostPath !== undefined)],
  ["Host Ports", (spec) => containersOf(spec).some((c) => portsOf(spec, c).some((p) => p.hostPort !== undefined && p.hostPort !== 0))],
  [
    "AppArmor",
    (_spec, metadata) =>
      Object.entries(metadata.annotations ?? {}).some(([key, value]) => key.startsWith("container.apparmor.security.beta.kubernetes.io/") && value !== "runtime/default" && !String(value).startsWith("localhost/")),
  ],
  [
    "SELinux",
    (spec) =>
      [spec.securityContext, ...containersOf(spec).map((c) => c.securityContext)].some(
        (s) => s?.seLinuxOptions !== undefined && (!SELINUX_TYPES.has(s.seLinuxOptions.type ?? "") || s.seLinuxOptions.user !== undefined || s.seLinuxOptions.role !== undefined),
      ),
  ],
  ["/proc Mount Type", (spec) => containersOf(spec).some((c) => c.securityContext?.procMount !== undefined && c.securityContext.procMount !== "Default")],
  ["Seccomp", (spec) => [spec.securityContext, ...containersOf(spec).map((c) => c.securityContext)].some((s) => s?.seccompProfile?.type === "Unconfined")],
  ["Sysctls", (spec) => (spec.securityContext?.sysctls ?? []).some((s: Spec) => !SAFE_SYSCTLS.has(s.name))],
];

const RESTRICTED: [string, (spec: Spec) => boolean][] = [
  ["Volume Types", (spec) => (spec.volumes ?? []).some((v: Spec) => !Object.keys(v).some((key) => RESTRICTED_VOLUMES.has(key)))],
  ["Privilege Escalation", (spec) => containersOf(spec).some((c) => c.securityContext?.allowPrivilegeEscalation !== false)],
  [
    "Running as Non-root",
    (spec) =>
      containersOf(spec).some((c) => {
        const own = c.securityContext?.runAsNonRoot;
        return own === false || (own !== true && spec.securityContext?.runAsNonRoot !== true);
      }) || spec.securityContext?.runAsNonRoot === false,
  ],
  ["Running as Non-root user", (spec) => spec.securityContext?.runAsUser === 0 || containersOf(spec).some((c) => c.securityContext?.runAsUser === 0)],
  [
    "Seccomp",
    (spec) =>
      containersOf(spec).some((c) => {
        const type = c.securityContext?.seccompProfile?.type ?? spec.securityContext?.seccompProfile?.type;
        return type !== "RuntimeDefault" && type !== "Localhost";
      }),
  ],
  [
    "Capabilities",
    (spec) =>
      containersOf(spec).some(
        (c) => !(c.securityContext?.capabilities?.drop ?? []).includes("ALL") || (c.securityContext?.capabilities?.add ?? []).some((cap: string) => cap !== "NET_BIND_SERVICE"),
      ),
  ],
];

/** The controls of `level` a pod spec breaks, by name; [] when it meets the level. */
export function podSecurityViolations(spec: Spec, metadata: Spec, level: Level): string[] {
  if (level === "privileged") return [];
  const broken = BASELINE.filter(([, breaks]) => breaks(spec, metadata)).map(([name]) => name);
  if (level === "restricted") broken.push(...RESTRICTED.filter(([, breaks]) => breaks(spec)).map(([name]) => `${name} (restricted)`));
  return broken;
}
