// The harness's flags (see bench/load.ts for the list) and the fixed sizes
// every phase shares.

/** What one `deno task bench` run measures, from its flags. */
export interface Settings {
  /** --quick: small sizes and short runs. */
  quick: boolean;
  /** --no-micro was not given. */
  micro: boolean;
  /** --phases, as given (groups such as `baseline` or `burst` not expanded). */
  phases: ReadonlySet<string>;
  /** --profile: the phase whose server runs with --cpu-prof, or "". */
  profile: string;
  /** --comet-flags, split on spaces. */
  cometFlags: string[];
  /** --server-v8-flags, split on commas. */
  serverV8Flags: string[];
  /** --trace-gc: the phase whose Comet runs with --trace-gc, or "". */
  traceGc: string;
  /** Servers run with --expose-gc (no --no-gc). */
  exposeGc: boolean;
  /** Idle connections of the memory phases. */
  memConns: number;
  /** Room sizes of the fan-out phases, ascending. */
  sizes: number[];
  /** The largest room size: the one the targets are held at. */
  fan: number;
  /** Saturation run length per room size, ms. */
  runMs: number;
  /** Paced (latency) run length, ms. */
  latMs: number;
  /** Single-key push run length, ms. */
  keysMs: number;
  /** Concurrent room-push connections. */
  pushers: number;
  /** Warm-up connections of the memory phases. */
  warmup: number;
  /** Cluster phase: room members, spread evenly over the nodes. */
  clusterMembers: number;
  /** Cluster phase: push run length, ms. */
  clusterMs: number;
  /** Burst phase: room members per transport. */
  burstMembers: number;
  /** Burst phase: room pushes. */
  burstPushes: number;
  /** The transports the burst phase runs over, in order. */
  burstKinds: ("tcp" | "ws")[];
  /** Load-generator processes. */
  gens: number;
  /** Comet/plain-Deno pairs over TCP. */
  pairs: number;
  /** Comet/plain-Deno pairs with Comet over WebSocket. */
  wsPairs: number;
  /** Read buffer of every fan-out and cluster client, bytes. */
  clientBuf: number;
  /** The baseline server's writes in flight at once. */
  baseInflight: number;
  /** Workers phase: the workers Comet runs with against one (`--workers-n`). */
  workersN: number;
  /** Workers phase: one-worker/N-worker pairs (`--workers-pairs`). */
  workersPairs: number;
  /** Rounds of the history phase (streams off, on, on and opted in). */
  historyPairs: number;
  /** `--server-cpus`: the taskset CPU list every server child runs on, or "" (not pinned). */
  serverCpus: string;
  /** `--gen-cpus`: the CPU list of the load generators and the harness (its pushers), or "". */
  genCpus: string;
  /** `--max-run-s`: seconds from the start past which no further run starts, or null. */
  maxRunS: number | null;
  /** `performance.now()` past which no further run starts. */
  hardDeadline: number;
}

/** Single-key push phase: connections (one key each). */
export const KEY_CONNS = 1_000;
/** Single-key push phase: keep-alive API connections. */
export const KEY_WORKERS = 8;
/** Connections opened at once, in all generators together. */
export const CONCURRENCY = 200;
/** Pushes/s of the low-rate latency run: the floor of push-to-delivery latency at FAN members. */
export const LOW_RATE = 2;
/** Comet's --queue in the phases that do not keep its defaults. */
export const QUEUE = 1024;
/**
 * Rates of the baseline's stream runs when no Comet latency run gave any
 * (e.g. --phases=baseline): about those of Comet's TCP sweep at 10k members.
 */
export const STREAM_RATES = [120, 60, 30, LOW_RATE];
/**
 * Burst phase: deliveries have stopped when none arrived for this long:
 * longer than the default --write-timeout (2 s), so a member whose socket
 * stalls is either closed or written to again before the count is read.
 */
export const BURST_IDLE_MS = 3_000;
/** The most one burst run waits for its deliveries after the last push is answered. */
export const BURST_MAX_MS = 120_000;

/**
 * Reads the harness's flags (`--name` or `--name=value`).
 *
 * @example
 * ```ts
 * import { parseSettings } from "./settings.ts";
 * const s = parseSettings(["--quick", "--phases=burst"]);
 * console.log(s.burstKinds); // ["tcp", "ws"]
 * ```
 */
export function parseSettings(args: readonly string[]): Settings {
  const argv = new Map<string, string>();
  for (const a of args) {
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new RangeError(`Unexpected argument ${a}`);
    argv.set(m[1]!, m[2] ?? "true");
  }
  const quick = argv.has("quick");
  const phases = new Set(
    (argv.get("phases") ??
      "baseline,mem-tcp,mem-ws,mem-serve,fanout-tcp,fanout-ws,fanout-pairs,history,burst,cluster,workers")
      .split(","),
  );
  const sizes = quick ? [100, 1_000] : [100, 1_000, 5_000, 10_000];
  /**
   * Burst phase (issue 17, case 1): one Comet with its default flags (per-IP
   * limits off, as every load connection comes from 127.0.0.1), `burstMembers`
   * members in one room, reading promptly, and `burstPushes` room pushes sent
   * through the API from `pushers` keep-alive connections as fast as it
   * answers; once over TCP, then over WebSocket, each on a fresh server. Every
   * accepted push must reach every member and no member may be closed as slow:
   * a member is slow when its socket refuses writes, not when room frames wait
   * for the server's turn.
   */
  const burstMembers = _int(argv, "burst-members", quick ? 2_000 : 10_000, 1);
  const burstPushes = _int(argv, "burst-pushes", quick ? 100 : 400, 1);
  const burstKinds = (["tcp", "ws"] as const).filter((k) =>
    phases.has("burst") || phases.has(`burst-${k}`)
  );
  const workersPairs = _int(argv, "workers-pairs", quick ? 1 : 3, 1);
  const historyPairs = _int(argv, "history-pairs", quick ? 1 : 3, 1);
  const maxRunS = argv.has("max-run-s") ? _int(argv, "max-run-s", 0, 1) : null;
  return {
    quick,
    micro: !argv.has("no-micro"),
    phases,
    profile: argv.get("profile") ?? "",
    cometFlags: (argv.get("comet-flags") ?? "").split(" ").filter((f) => f !== ""),
    serverV8Flags: (argv.get("server-v8-flags") ?? "").split(",").filter((f) => f !== ""),
    traceGc: argv.get("trace-gc") ?? "",
    exposeGc: !argv.has("no-gc"),
    memConns: Number(argv.get("mem-conns") ?? (quick ? 2_000 : 15_000)),
    sizes,
    fan: sizes[sizes.length - 1]!,
    runMs: Number(argv.get("duration") ?? (quick ? 2_000 : 4_000)),
    latMs: quick ? 2_000 : 5_000,
    keysMs: quick ? 2_000 : 5_000,
    pushers: Number(argv.get("pusher-concurrency") ?? 16),
    warmup: quick ? 500 : 2_000,
    clusterMembers: Number(argv.get("cluster-members") ?? (quick ? 900 : 3_000)),
    clusterMs: Number(argv.get("cluster-duration") ?? (quick ? 2_000 : 5_000)),
    burstMembers,
    burstPushes,
    burstKinds,
    // One process reading 10k sockets lags on some of them by seconds at
    // higher rates (Deno's op scheduling), which shows up as server latency.
    // Baseline stream at 10k, 30-120 frames/s, p99 measured interleaved on
    // this 2-core machine: 1 process ~5,000 ms, 2 processes 320-770 ms, 4
    // processes 140-285 ms (the lowest and steadiest). The price: 4 processes
    // take more of the shared cores per delivery, which lowers the 1-frame
    // fan-out figures by 10-25% (most in small rooms); Comet is measured with
    // the same generators.
    gens: _int(argv, "gens", 4, 1),
    // The phases above measure the two servers a minute or more apart, and
    // this VM's speed moves over minutes (hypervisor steal took a quarter of
    // the cores in some): a pair run seconds apart shares the machine's
    // state, and the median of the pairs' ratios holds the target.
    pairs: _int(argv, "pairs", quick ? 2 : 5, 0),
    // The WebSocket target (0.6x) sits further from what is measured, so fewer pairs.
    wsPairs: _int(argv, "ws-pairs", quick ? 1 : 3, 0),
    // Large enough that one read takes any write a server makes here (Comet's
    // largest at 10k members are about 40 KB) plus some backlog. With 16 KiB
    // the generators' cost per delivery depended on how write sizes fell
    // against the buffer: the baseline's fixed 390-frame writes (31.2 KB) took
    // two full reads, Comet's writes of 256 to 511 frames with the same mean
    // took two or three, so the generators, the limit of that run, paid for
    // more reads on Comet's stream (154 frames per read against 195; at 5,000
    // members 122 against 202).
    clientBuf: _int(argv, "client-buf", 65_536, 4096),
    // Like Comet's write scheduler, a FIFO with at most K (unbounded writes
    // cost about twice the CPU per write and starve some connections for
    // seconds).
    baseInflight: _int(argv, "baseline-inflight", 128, 1),
    // As many workers as the machine has cores, like the command's --workers auto.
    workersN: _int(argv, "workers-n", navigator.hardwareConcurrency || 1, 1),
    workersPairs,
    historyPairs,
    serverCpus: _cpuList(argv, "server-cpus"),
    genCpus: _cpuList(argv, "gen-cpus"),
    maxRunS,
    // The whole run stays under ~8 min, a minute more for the burst phase's two
    // servers, and 70 s per workers pair (two fresh servers, each measured for
    // memory, fan-out and latency).
    // --max-run-s replaces the estimate where an outer limit (the device
    // script's `timeout`) would otherwise kill the run before results.json.
    hardDeadline: performance.now() + (maxRunS !== null ? maxRunS * 1000 : 460_000 +
      (burstKinds.length ? 60_000 : 0) +
      (phases.has("workers") ? 10_000 + 70_000 * workersPairs : 0)),
  };
}

/** The taskset CPU list `--name=LIST` (`0-7`, `0,2,4-6`), or "" when absent. */
function _cpuList(argv: Map<string, string>, name: string): string {
  const v = argv.get(name);
  if (v === undefined) return "";
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v)) {
    throw new RangeError(`--${name} wants a CPU list such as 0-7 or 0,2,4-6: ${v}`);
  }
  return v;
}

/** The integer flag `name` (at least `min`), or `fallback` when absent. */
function _int(argv: Map<string, string>, name: string, fallback: number, min: number): number {
  const n = Number(argv.get(name) ?? fallback);
  if (!Number.isInteger(n) || n < min) {
    throw new RangeError(
      min === 0
        ? `--${name} wants an integer of 0 or more`
        : min === 1
        ? `--${name} wants a positive integer`
        : `--${name} wants an integer of at least ${min}`,
    );
  }
  return n;
}
