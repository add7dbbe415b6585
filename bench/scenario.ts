/** How big and how long the benchmarks run: full figures, or a quick smoke run. */
export interface BenchSizes {
  /** The warm blob, in bytes (1 GiB). */
  warmBlob: number;
  /** Repetitions of each warm measurement; the median is reported. */
  warmRounds: number;
  /** Layer sizes of the cold-pull image, in bytes (~1 GiB in all). */
  coldLayers: number[];
  coldRounds: number;
  /** The thundering-herd blob, in bytes (500 MiB). */
  herdBlob: number;
  herdClients: number;
  /** The herd again with the origin behind a link of this bandwidth, and a blob of this size. */
  linkBytesPerSecond: number;
  linkHerdBlob: number;
  /** How long each manifest load run lasts, and its connections. */
  loadSeconds: number;
  loadConnections: number;
  /** Keep-alive connections pulling from a warm mirror at once, and for how long. */
  connections: number;
  connectionSeconds: number;
  /** The bandwidth of each replica's own simulated NIC, when scale-out is measured. */
  replicaNicBytesPerSecond: number;
  /** Layer sizes of the image a simulated rollout pulls (256 MiB in all: 100 nodes then move 25 GiB through the replicas), and how many nodes pull it. */
  rolloutLayers: number[];
  rolloutClients: number;
}

const MiB = 1024 * 1024;

export const FULL_SIZES: BenchSizes = {
  warmBlob: 1024 * MiB,
  warmRounds: 3,
  coldLayers: [256, 256, 128, 128, 128, 64, 32, 32].map((n) => n * MiB),
  coldRounds: 4,
  herdBlob: 500 * MiB,
  herdClients: 20,
  linkBytesPerSecond: 100 * MiB,
  linkHerdBlob: 200 * MiB,
  loadSeconds: 10,
  loadConnections: 64,
  connections: 1000,
  connectionSeconds: 60,
  replicaNicBytesPerSecond: 50 * MiB,
  rolloutLayers: [64, 64, 64, 32, 32].map((n) => n * MiB),
  rolloutClients: 100,
};

export const QUICK_SIZES: BenchSizes = {
  warmBlob: 64 * MiB,
  warmRounds: 1,
  coldLayers: [16, 16, 8, 8].map((n) => n * MiB),
  coldRounds: 1,
  herdBlob: 32 * MiB,
  herdClients: 20,
  linkBytesPerSecond: 100 * MiB,
  linkHerdBlob: 8 * MiB,
  loadSeconds: 2,
  loadConnections: 64,
  connections: 1000,
  connectionSeconds: 5,
  replicaNicBytesPerSecond: 50 * MiB,
  rolloutLayers: [8, 8].map((n) => n * MiB),
  rolloutClients: 20,
};

export interface BenchContext {
  sizes: BenchSizes;
  /** A temp dir for this scenario's images and outputs; removed after it. */
  workDir: string;
  /** One line of progress on stderr. */
  progress(message: string): void;
}

/** A table of figures, printed as Markdown. */
export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
}

/** One of the targets, and whether this run met it. */
export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

/** The highest resident set of a process during one phase. */
export interface MemoryReading {
  phase: string;
  process: string;
  peakMiB: number;
}

export interface ScenarioResult {
  tables: Table[];
  targets: TargetCheck[];
  memory: MemoryReading[];
}

export interface Scenario {
  name: string;
  description: string;
  run(context: BenchContext): Promise<ScenarioResult>;
}

/** berth's peak resident set must stay under this everywhere. */
export const RSS_LIMIT_MiB = 200;
