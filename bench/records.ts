// The records a bench run keeps: what each phase measured, and the whole
// results.json. Every phase writes its part of {@linkcode Results}.
import type { MachineCpu, NetCounters } from "./machine_cpu.ts";
import type { Latency, MemUsage } from "./messages.ts";
import type { GenShare, PerConnSpread, TimelineWindow } from "./load_gens.ts";
import type { Measured } from "./quiet_guard.ts";

/** A memory and handshake phase: idle connections opened into a fresh server. */
export interface MemResult {
  perConnHeapUsed: number | null;
  perConnHeapTotal: number | null;
  perConnExternal: number | null;
  usageBefore: MemUsage | null;
  usageAfter: MemUsage | null;
  conns: number;
  failed: number;
  rssBefore: number;
  rssAfter: number[];
  perConnBytes: number;
  handshakeMs: number;
  handshakesPerSec: number;
  serverCpu: number;
  genCpu: number;
  machine: MachineCpu;
  foreignCores: number;
  errors: string[];
}

/** The CPU, machine and network figures of one measured run, as rates over it. */
export interface RunFigures {
  /** The server's CPU in cores (a cluster's: every node's together). */
  serverCpu: number;
  genCpu: number;
  machine: MachineCpu;
  foreignCores: number;
  net: NetCounters;
}

/** What every room-push run reports, on one node or a cluster. */
export interface RoomPushRun extends RunFigures {
  members: number;
  membersAfter: number;
  slowClosed: number;
  pushesOk: number;
  pushesFailed: number;
  pushMs: number;
  deliveries: number;
  expected: number;
  lost: number;
  deliveriesPerSec: number;
  pushesPerSec: number;
  latency: Latency;
  pusherCpu: number;
  perConnMeanLatency: PerConnSpread | null;
  timeline: TimelineWindow[];
}

/** One Comet room-push run at one room size. */
export interface FanResult extends RoomPushRun {
  size: number;
  disconnects: number;
  closed: number;
  framesPerRead: number;
  writes: number | null;
  framesPerWrite: number | null;
}

/** A paced Comet run of the latency sweep, at `fraction` of the top rate (0: the low fixed rate). */
export type LatencyRun = Measured<FanResult> & { fraction: number };

/** The plain-Deno server writing `framesPerBatch` frames per write to every member. */
export interface BaselineFanRun extends RunFigures {
  size: number;
  framesPerBatch: number;
  inflight: number | "unbounded";
  members: number;
  writes: number | null;
  framesPerWrite: number | null;
  batches: number;
  deliveries: number;
  expected: number;
  lost: number;
  deliveriesPerSec: number;
  batchesPerSec: number;
  latency: Latency;
  framesPerRead: number;
}

/** The plain-Deno server's coalescing writers fed at `rate` frames/s. */
export interface BaselineStreamRun extends RunFigures {
  size: number;
  rate: number;
  inflight: number;
  members: number;
  produced: number;
  writes: number | null;
  framesPerWrite: number | null;
  deliveries: number;
  expected: number;
  lost: number;
  deliveriesPerSec: number;
  latency: Latency;
  perConnMeanLatency: PerConnSpread | null;
  timeline: TimelineWindow[];
  perGen: GenShare[];
}

/** A baseline stream run and the Comet latency run whose rate it took ("fixed": none). */
export type BaselineStream = Measured<BaselineStreamRun> & { matches: string; fraction: number };

/** Single-key pushes round-robin over the key connections. */
export interface PushKeysResult {
  ok: number;
  failed: number;
  elapsedMs: number;
  perSec: number;
  deliveries: number;
  lost: number;
  latency: Latency;
  serverCpu: number;
  pusherCpu: number;
}

/** What one socket write cost in a fan-out run. */
export interface WriteCost {
  /** Server CPU per write, µs. */
  cpuUs: number;
  /** Context switches on the machine per write. */
  contextSwitches: number;
}

/** One pair of the fanout-pairs phase. */
export interface FanPair {
  comet: FanResult;
  baseline: BaselineFanRun;
  ratio: number;
  /** Cores lost to other programs or steal during each run. */
  disturbance: [number, number];
  /** Per socket write of each run: server CPU in µs, and context switches on the machine. */
  perWrite: [WriteCost | null, WriteCost | null];
  /** Measured again and left out of the median (see bench/phase_pairs.ts). */
  disturbed?: true;
}

/** The pairs of one transport, and the median of the undisturbed ones' ratios. */
export interface PairsResult {
  members: number;
  pairs: FanPair[];
  medianRatio: number | null;
}

/** A room-push run on a cluster of Comet nodes on one Redis. */
export interface ClusterRun extends RoomPushRun {
  nodes: number;
  perNode: number[];
  /** CPU of each node in cores over the run; `serverCpu` is their sum. */
  nodeCpu: number[];
  redisCpu: number;
}

/** The cluster phase: one node, then three. */
export interface ClusterResults {
  members: number;
  durationMs: number;
  one?: Measured<ClusterRun>;
  three?: Measured<ClusterRun>;
  error?: string;
}

/** What one push burst got back from the API. */
export interface BurstPush {
  /** Answered with code 0. */
  accepted: number;
  /** Answered 429 (a backlog cap: retry after Retry-After). */
  refused429: number;
  /** Answered 503 (shutting down, or a cluster not ready). */
  refused503: number;
  /** Any other answer. */
  otherFailed: number;
  /** No answer: the connection failed; the next push goes on a fresh one. */
  errors: number;
  /** The first answer other than code 0, its status and body (cut), or the first error. */
  firstRefusal: string | null;
  elapsedMs: number;
  startAt: number;
}

/** One burst phase run over one transport. */
export interface BurstRun extends Omit<BurstPush, "startAt" | "elapsedMs">, RunFigures {
  kind: "tcp" | "ws";
  /** Flags Comet ran with, besides its listen addresses and log level. */
  flags: string[];
  members: number;
  /** Members the generators still held once deliveries stopped. */
  membersAfter: number;
  failedToOpen: number;
  pushes: number;
  /** Accepted pushes times members. */
  expected: number;
  received: number;
  /** `expected` - `received`: must be 0. */
  lost: number;
  /** comet_slow_closed_total over the run (null where /metrics lacks it). */
  slowClosed: number | null;
  /** comet_pushes_refused_total by cap over the run (null where /metrics lacks it). */
  refusedByCap: Record<string, number> | null;
  /** comet_dropped_total over the run (the drop policy; null where /metrics lacks it). */
  dropped: number | null;
  /** op-6 frames the members got, and connections the generators saw closed. */
  disconnects: number;
  closed: number;
  /** From the first push sent to the last push answered. */
  pushMs: number;
  /** From the first push sent to the last delivery (or the last answer, if later). */
  durationMs: number;
  /** Pushes the API answered per second, and those it accepted. */
  pushesPerSec: number;
  acceptedPerSec: number;
  deliveriesPerSec: number;
  latency: Latency;
  pusherCpu: number;
  timeline: TimelineWindow[];
}

/**
 * Where the machine's CPU went during one run, in cores: the server process
 * (all its threads, workers included), the load generators, the driver's
 * pushers, kernel time (system, over every process: the server's and the
 * generators' own system time is also in theirs), softirq (network receive
 * and transmit work no process is charged for), hypervisor steal, other
 * programs, and what stayed idle.
 */
export interface CpuWhere {
  server: number;
  gens: number;
  pusher: number;
  system: number;
  softirq: number;
  steal: number;
  other: number;
  idle: number;
}

/** One side of a workers pair: a fresh Comet with `workers` workers. */
export interface WorkersSide {
  workers: number;
  /** Idle connections, RSS read after a GC in every isolate (bench/comet_gc.ts). */
  memory: MemResult;
  /** Saturation room pushes at the largest room. */
  fan: FanResult;
  fanCpu: CpuWhere;
  /** Room pushes at the low fixed rate, same members. */
  latency: FanResult;
  latencyCpu: CpuWhere;
  /** Members each worker held before the runs (bench/comet_gc.ts); null where unknown. */
  membersPerWorker: number[] | null;
}

/** One pair of the workers phase: `--workers 1`, then `--workers N`, seconds apart. */
export interface WorkersPair {
  one: WorkersSide;
  many: WorkersSide;
  /** p99 push->delivery at the low rate, N workers over 1. */
  p99Ratio: number | null;
  /** Saturation deliveries/s, N workers over 1. */
  fanRatio: number;
  /** Connect+auth/s, N workers over 1. */
  handshakeRatio: number;
  /** Cores lost to other programs or steal during each side. */
  disturbance: [number, number];
  /** Measured again and left out of the medians (see bench/phase_workers.ts). */
  disturbed?: true;
}

/** The workers phase: its pairs and the medians of the undisturbed ones. */
export interface WorkersResult {
  workers: number;
  members: number;
  memConns: number;
  /** Pushes/s of the latency runs. */
  rate: number;
  pairs: WorkersPair[];
  medianP99Ratio: number | null;
  /** The latency runs' p99 with N workers, median over the pairs, ms. */
  medianP99Many?: number | null;
  medianFanRatio: number | null;
  medianHandshakeRatio: number | null;
  /** RSS per idle connection with N workers and with 1, medians over the pairs. */
  medianMemMany: number | null;
  medianMemOne: number | null;
}

/** A phase that failed, in place of its record. */
export interface PhaseError {
  error: string;
}

/** One `deno bench` result: the first result's figures, in ns. */
export interface MicroResult {
  group: string | null;
  name: string;
  avg: number;
  p75: number;
  p99: number;
  [figure: string]: unknown;
}

/** The machine the run was on. */
export interface MachineInfo {
  nproc: number;
  memTotalKiB: number;
  cpu: string;
  kernel: string;
  openFilesLimit: number | null;
}

/** The source the run measured. */
export interface SourceState {
  commit: string;
  /** Files under src/ and mod.ts that differ from `commit`. */
  dirtyFiles: number;
}

/** The run's settings as results.json records them. */
export interface ResultSettings {
  memConns: number;
  roomSizes: number[];
  saturationMs: number;
  latencyMs: number;
  pusherConcurrency: number;
  connectConcurrency: number;
  queue: number;
  bodyBytes: number;
  exposeGc: boolean;
  quick: boolean;
  clusterMembers: number;
  clusterMs: number;
  gens: number;
  clientBuf: number;
  baselineInflight: number;
  burstMembers: number;
  burstPushes: number;
  burstIdleMs: number;
  workersN: number;
  workersPairs: number;
  /** `--server-cpus`: the CPU list the servers ran on; null where not pinned. */
  serverCpus: string | null;
  /** `--gen-cpus`: the CPU list of the load generators and pushers; null where not pinned. */
  genCpus: string | null;
  /** `--max-run-s`, where given. */
  maxRunS: number | null;
  /** Set once a Comet server starts. */
  cometLimitFlags?: string[];
  serverV8Flags?: string[];
}

/** Other programs' CPU, in cores. */
export interface Contention {
  atStartCores: number;
  wholeRunCores?: number;
  worstRunCores?: number;
  worstRunStealCores?: number;
}

/** The plain-Deno server's records. */
export interface BaselineResults {
  memory?: Measured<MemResult>;
  fanout?: Measured<BaselineFanRun>[];
  fanout_matched?: (Measured<BaselineFanRun> & { matches: string })[];
  fanout_unbounded?: Measured<BaselineFanRun>;
  stream?: BaselineStream[];
}

/** Comet's records. */
export interface CometResults {
  memory_tcp?: Measured<MemResult>;
  memory_ws?: Measured<MemResult>;
  memory_serve?: MemResult | { skipped: string } | PhaseError;
  fanout_tcp?: Measured<FanResult>[];
  fanout_ws?: Measured<FanResult>[];
  latency_sweep_tcp?: LatencyRun[];
  latency_sweep_ws?: LatencyRun[];
  latency_tcp?: LatencyRun;
  latency_ws?: LatencyRun;
  push_keys?: PushKeysResult;
  cluster?: ClusterResults;
  burst_tcp?: BurstRun | PhaseError;
  burst_ws?: BurstRun | PhaseError;
}

/** One line of the final table. */
export interface Row {
  figure: string;
  comet: string;
  baseline: string;
  ratio: string;
  target: string;
  met: string;
}

/** bench/out/results.json. */
export interface Results {
  date: string;
  deno: typeof Deno.version;
  machine: MachineInfo;
  settings: ResultSettings;
  micro: MicroResult[] | null;
  baseline: BaselineResults;
  comet: CometResults;
  source?: SourceState;
  contention?: Contention;
  fanout_pairs_tcp?: PairsResult;
  fanout_pairs_ws?: PairsResult;
  workers?: WorkersResult | PhaseError | { skipped: string };
  history?: HistoryResult;
  error?: string;
  table?: Row[];
  elapsedSec?: number;
}

/** One round of the history phase (bench/phase_history.ts): the off server, then the on server with goim and with opted-in members. */
export interface HistoryRound {
  off: FanResult;
  onPlain: FanResult;
  onStreams: FanResult;
  /** onPlain / off, deliveries per second. */
  plainRatio: number;
  /** onStreams / off. */
  streamsRatio: number;
  disturbance: [number, number];
  disturbed?: true;
}

/** The rounds and their medians. */
export interface HistoryResult {
  members: number;
  rounds: HistoryRound[];
  plainMedian: number | null;
  streamsMedian: number | null;
}
