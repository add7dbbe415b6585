import { Counter, Gauge, type Registry } from "prom-client";

/** What a replica's coordination tells its metrics and status page, read when asked. */
export interface CoordinationStatus {
  replicaId: string;
  /** Whether the replica coordinates with the others now (else it serves on its own). */
  up: boolean;
  /** When `up` last changed. */
  since: Date;
  /** How often each shared feature ran on this replica alone since start. */
  fallbacks: ReadonlyMap<string, number>;
}

/** Registers `berth_coordination_*` in berth's registry. */
export function registerCoordinationMetrics(registry: Registry, status: () => CoordinationStatus): void {
  new Gauge({
    name: "berth_coordination_up",
    help: "1 while this replica coordinates with the others through Redis; 0 while it serves on its own (Redis down).",
    registers: [registry],
    collect() {
      this.set(status().up ? 1 : 0);
    },
  });
  new Counter({
    name: "berth_coordination_fallbacks_total",
    help: "Times a shared feature ran on this replica alone because Redis could not be asked, by feature.",
    labelNames: ["feature"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [feature, count] of status().fallbacks) this.inc({ feature }, count);
    },
  });
}
