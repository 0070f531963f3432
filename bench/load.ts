// deno-lint-ignore-file no-explicit-any
// `deno task bench`: micro benchmarks, then the load harness. Starts the real
// Comet server and a plain-Deno baseline server as child processes, drives
// them over loopback sockets from a separate load-generator process, prints
// one table and writes bench/out/results.json and bench/out/fanout.svg.
//
// Flags (all optional):
//   --quick              small sizes and short runs, for trying the harness out
//   --no-micro           skip the Deno.bench micro benchmarks
//   --phases=a,b         only these phases: baseline (= baseline-mem + baseline-fan),
//                        mem-tcp, mem-ws, mem-serve, fanout-tcp, fanout-ws, fanout-pairs,
//                        burst (= burst-tcp + burst-ws), cluster (push-keys runs inside
//                        fanout-tcp); `--phases=burst --no-micro` runs the burst alone
//   --profile=PHASE      run Comet with --cpu-prof in that phase (fanout-tcp,
//                        fanout-ws, mem-tcp, mem-ws, burst-tcp, burst-ws; cluster-1x-n1,
//                        cluster-3x-n1, cluster-3x-n2, cluster-3x-n3 for one cluster node), or the
//                        plain-Deno server (baseline-mem, baseline-fan); fanout-pairs
//                        profiles both;
//                        profiles go to bench/out/prof/
//   --trace-gc=PHASE     run Comet with --v8-flags=--trace-gc in that phase; log in bench/out/
//   --no-gc              do not run the servers with --expose-gc for memory samples
//   --duration=MS        saturation run length per room size (default 4000)
//   --pusher-concurrency=N  concurrent room-push connections (default 16: with 4 the API
//                        round trip, not the server, set the top rate; Comet sat 20-30% idle)
//   --cluster-members=M  room members of the cluster phase (default 3000)
//   --cluster-duration=MS  push run length of the cluster phase (default 5000)
//   --burst-members=M    room members of the burst phase, per transport (default 10000,
//                        2000 with --quick)
//   --burst-pushes=N     room pushes of the burst phase (default 400, 100 with --quick)
//   --client-buf=BYTES   read buffer of every fan-out client (default 65536; see CLIENT_BUF)
//   --pairs=N            Comet/plain-Deno pairs of the fanout-pairs phase over TCP (default 5,
//                        2 with --quick)
//   --ws-pairs=N         the same with Comet over WebSocket (default 3, 1 with --quick)
//   --gens=N             load-generator processes sharing every phase's connections (default 4)
//   --baseline-inflight=K  the baseline server's writes in flight at once (default 128)
//   --comet-flags="..."  extra flags for every Comet server, e.g. "--write-burst 32"
//   --server-v8-flags=a,b  V8 flags for every server, Comet's and the baseline's alike,
//                        e.g. --max-semi-space-size=2 (young-generation cap, in MiB)
import {
  BODY,
  type CompactHistogram,
  cpuSeconds,
  Histogram,
  nowMs,
  pushBody,
  readProc,
  redisCommand,
  rssBytes,
  sleep,
} from "./_common.ts";
import { type RedisServer, startRedis } from "../tests/_redis.ts";

// ---------------------------------------------------------------- settings --

const argv = new Map<string, string>();
for (const a of Deno.args) {
  const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(a);
  if (!m) throw new Error(`Unexpected argument ${a}`);
  argv.set(m[1]!, m[2] ?? "true");
}
const QUICK = argv.has("quick");
const PHASES = new Set(
  (argv.get("phases") ??
    "baseline,mem-tcp,mem-ws,mem-serve,fanout-tcp,fanout-ws,fanout-pairs,burst,cluster")
    .split(","),
);
const PROFILE = argv.get("profile") ?? "";
const COMET_FLAGS = (argv.get("comet-flags") ?? "").split(" ").filter((f) => f !== "");
const SERVER_V8_FLAGS = (argv.get("server-v8-flags") ?? "").split(",").filter((f) => f !== "");
const TRACE_GC = argv.get("trace-gc") ?? "";
const EXPOSE_GC = !argv.has("no-gc");
const MEM_CONNS = Number(argv.get("mem-conns") ?? (QUICK ? 2_000 : 15_000));
const SIZES = QUICK ? [100, 1_000] : [100, 1_000, 5_000, 10_000];
const FAN = SIZES[SIZES.length - 1]!;
const RUN_MS = Number(argv.get("duration") ?? (QUICK ? 2_000 : 4_000));
const LAT_MS = QUICK ? 2_000 : 5_000;
const KEYS_MS = QUICK ? 2_000 : 5_000;
const KEY_CONNS = 1_000;
const KEY_WORKERS = 8;
const PUSHERS = Number(argv.get("pusher-concurrency") ?? 16);
const CONCURRENCY = 200;
const WARMUP = QUICK ? 500 : 2_000;
/** Pushes/s of the low-rate latency run: the floor of push-to-delivery latency at FAN members. */
const LOW_RATE = 2;
const QUEUE = 1024;
/**
 * Rates of the baseline's stream runs when no Comet latency run gave any
 * (e.g. --phases=baseline): about those of Comet's TCP sweep at 10k members.
 */
const STREAM_RATES = [120, 60, 30, LOW_RATE];
/** Cluster phase: room members, spread evenly over the nodes, and the push run length. */
const CLUSTER_MEMBERS = Number(argv.get("cluster-members") ?? (QUICK ? 900 : 3_000));
const CLUSTER_MS = Number(argv.get("cluster-duration") ?? (QUICK ? 2_000 : 5_000));
/**
 * Burst phase (issue 17, case 1): one Comet with its default flags (per-IP
 * limits off, as every load connection comes from 127.0.0.1), `BURST_MEMBERS`
 * members in one room, reading promptly, and `BURST_PUSHES` room pushes sent
 * through the API from `PUSHERS` keep-alive connections as fast as it
 * answers; once over TCP, then over WebSocket, each on a fresh server. Every
 * accepted push must reach every member and no member may be closed as slow:
 * a member is slow when its socket refuses writes, not when room frames wait
 * for the server's turn.
 */
const BURST_MEMBERS = Number(argv.get("burst-members") ?? (QUICK ? 2_000 : 10_000));
if (!Number.isInteger(BURST_MEMBERS) || BURST_MEMBERS < 1) {
  throw new Error(`--burst-members wants a positive integer`);
}
const BURST_PUSHES = Number(argv.get("burst-pushes") ?? (QUICK ? 100 : 400));
if (!Number.isInteger(BURST_PUSHES) || BURST_PUSHES < 1) {
  throw new Error(`--burst-pushes wants a positive integer`);
}
const BURST_KINDS = (["tcp", "ws"] as const).filter((k) =>
  PHASES.has("burst") || PHASES.has(`burst-${k}`)
);
/**
 * Deliveries have stopped when none arrived for this long: longer than the
 * default --write-timeout (2 s), so a member whose socket stalls is either
 * closed or written to again before the count is read.
 */
const BURST_IDLE_MS = 3_000;
/** The most one burst run waits for its deliveries after the last push is answered. */
const BURST_MAX_MS = 120_000;
/**
 * Load-generator processes. One process reading 10k sockets lags on some of
 * them by seconds at higher rates (Deno's op scheduling), which shows up as
 * server latency. Baseline stream at 10k, 30-120 frames/s, p99 measured
 * interleaved on this 2-core machine: 1 process ~5,000 ms, 2 processes
 * 320-770 ms, 4 processes 140-285 ms (the lowest and steadiest). The price:
 * 4 processes take more of the shared cores per delivery, which lowers the
 * 1-frame fan-out figures by 10-25% (most in small rooms); Comet is
 * measured with the same generators.
 */
const GENS = Number(argv.get("gens") ?? 4);
if (!Number.isInteger(GENS) || GENS < 1) throw new Error(`--gens wants a positive integer`);
/**
 * Alternating Comet and plain-Deno runs at the largest TCP room
 * (fanout-pairs; then `WS_PAIRS` at the largest WebSocket room). The phases above measure the two servers a minute or more
 * apart, and this VM's speed moves over minutes (hypervisor steal took a
 * quarter of the cores in some): a pair run seconds apart shares the
 * machine's state, and the median of the pairs' ratios holds the target.
 */
const PAIRS = Number(argv.get("pairs") ?? (QUICK ? 2 : 5));
if (!Number.isInteger(PAIRS) || PAIRS < 0) throw new Error(`--pairs wants an integer of 0 or more`);
/**
 * The same at the largest WebSocket room, against plain Deno over TCP: the
 * WebSocket target (0.6x) sits further from what is measured, so fewer pairs.
 */
const WS_PAIRS = Number(argv.get("ws-pairs") ?? (QUICK ? 1 : 3));
if (!Number.isInteger(WS_PAIRS) || WS_PAIRS < 0) {
  throw new Error(`--ws-pairs wants an integer of 0 or more`);
}
/**
 * Read buffer of each fan-out and cluster client. Large enough that one read
 * takes any write a server makes here (Comet's largest at 10k members are
 * about 40 KB) plus some backlog. With 16 KiB the generators' cost per
 * delivery depended on how write sizes fell against the buffer: the
 * baseline's fixed 390-frame writes (31.2 KB) took two full reads, Comet's
 * writes of 256 to 511 frames with the same mean took two or three, so the
 * generators, the limit of that run, paid for more reads on Comet's stream
 * (154 frames per read against 195; at 5,000 members 122 against 202).
 */
const CLIENT_BUF = Number(argv.get("client-buf") ?? 65_536);
if (!Number.isInteger(CLIENT_BUF) || CLIENT_BUF < 4096) {
  throw new Error(`--client-buf wants an integer of at least 4096`);
}
/**
 * The baseline server's writes in flight at once: like Comet's write
 * scheduler, a FIFO with at most K (unbounded writes cost about twice the
 * CPU per write and starve some connections for seconds).
 */
const BASE_INFLIGHT = Number(argv.get("baseline-inflight") ?? 128);
if (!Number.isInteger(BASE_INFLIGHT) || BASE_INFLIGHT < 1) {
  throw new Error(`--baseline-inflight wants a positive integer`);
}
// The whole run stays under ~8 min, and a minute more for the burst phase's two servers.
const HARD_DEADLINE = performance.now() + 460_000 + (BURST_KINDS.length ? 60_000 : 0);

const ROOT = new URL("../", import.meta.url);
const OUT = new URL("bench/out/", ROOT);
const path = (rel: string) => new URL(rel, ROOT).pathname;
Deno.mkdirSync(OUT, { recursive: true });
const PROF_DIR = new URL("prof/", OUT).pathname;

function log(msg: string): void {
  const t = ((performance.now() - T0) / 1000).toFixed(1).padStart(6);
  console.error(`[${t}s] ${msg}`);
}
const T0 = performance.now();

function checkDeadline(what: string): void {
  if (performance.now() > HARD_DEADLINE) throw new Error(`Out of time before ${what}`);
}

// ----------------------------------------------------------- child process --

/** A child process spoken to over JSON lines on stdin/stdout; stderr is kept for errors. */
class Child {
  readonly name: string;
  readonly proc: Deno.ChildProcess;
  readonly pid: number;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: string[] = [];
  #waiters: (() => void)[] = [];
  #done = false;
  #nextId = 1;
  stderr = "";
  readonly exited: Promise<Deno.CommandStatus>;

  constructor(name: string, args: string[]) {
    this.name = name;
    this.proc = new Deno.Command(Deno.execPath(), {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      cwd: ROOT.pathname,
    }).spawn();
    this.pid = this.proc.pid;
    OURS.add(this.pid);
    this.#writer = this.proc.stdin.getWriter();
    void this.#pump(this.proc.stdout, (l) => {
      this.#lines.push(l);
      for (const w of this.#waiters.splice(0)) w();
    }).then(() => {
      this.#done = true;
      for (const w of this.#waiters.splice(0)) w();
    });
    void this.#pump(this.proc.stderr, (l) => {
      this.stderr = (this.stderr + l + "\n").slice(-20_000);
      for (const w of this.#waiters.splice(0)) w();
    });
    this.exited = this.proc.status;
  }

  async #pump(stream: ReadableStream<Uint8Array>, onLine: (l: string) => void): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      for (const p of parts) onLine(p);
    }
    if (rest) onLine(rest);
  }

  /** Resolves with the first stdout or stderr line matching, within `timeout` ms. */
  async waitFor(
    test: (line: string, stream: "out" | "err") => RegExpExecArray | null,
    timeout = 20_000,
  ): Promise<RegExpExecArray> {
    const deadline = performance.now() + timeout;
    let seenOut = 0;
    for (;;) {
      for (; seenOut < this.#lines.length; seenOut++) {
        const m = test(this.#lines[seenOut]!, "out");
        if (m) return m;
      }
      for (const l of this.stderr.split("\n")) {
        const m = test(l, "err");
        if (m) return m;
      }
      if (this.#done) throw new Error(`${this.name} exited:\n${this.stderr}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${this.name}: timed out waiting:\n${this.stderr}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        timer = setTimeout(r, Math.min(left, 200));
      });
      clearTimeout(timer);
    }
  }

  /** Sends one command and resolves with its reply. */
  async call(cmd: Record<string, unknown>, timeout = 60_000): Promise<Record<string, any>> {
    const id = this.#nextId++;
    await this.#writer.write(new TextEncoder().encode(JSON.stringify({ ...cmd, id }) + "\n"));
    const deadline = performance.now() + timeout;
    for (;;) {
      const i = this.#lines.findIndex((l) => l.startsWith(`{"id":${id},`));
      if (i >= 0) {
        const reply = JSON.parse(this.#lines.splice(i, 1)[0]!);
        if (!reply.ok) throw new Error(`${this.name} ${cmd.cmd} failed: ${reply.error}`);
        return reply;
      }
      if (this.#done) throw new Error(`${this.name} exited during ${cmd.cmd}:\n${this.stderr}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${this.name}: ${cmd.cmd} timed out:\n${this.stderr}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        timer = setTimeout(r, Math.min(left, 500));
      });
      clearTimeout(timer);
    }
  }

  /** Stops the process: `signal` first, SIGKILL after `grace` ms. */
  async stop(signal: Deno.Signal = "SIGTERM", grace = 12_000): Promise<void> {
    try {
      this.proc.kill(signal);
    } catch {
      // already gone
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), grace)));
    if (await Promise.race([this.exited, late]) === "late") {
      log(`${this.name} did not stop in ${grace} ms; killing it`);
      try {
        this.proc.kill("SIGKILL");
      } catch {
        // gone
      }
      await this.exited;
    }
    clearTimeout(timer);
    try {
      await this.#writer.close();
    } catch {
      // closed
    }
  }
}

const RUN = ["run", "--allow-net", "--allow-read", "--allow-env"];

function v8flags(gc: boolean, traceGc: boolean): string[] {
  const f = [
    ...(gc ? ["--expose-gc"] : []),
    ...(traceGc ? ["--trace-gc"] : []),
    ...SERVER_V8_FLAGS,
  ];
  return f.length ? [`--v8-flags=${f.join(",")}`] : [];
}

/** Most connections one load generator holds (its open-files limit is ~20,000). */
const MAX_PER_GEN = 19_000;
/** Absolute-time windows of the merged timeline. */
const WINDOW_MS = 500;

/**
 * The load generators: GENS child processes of bench/loadgen.ts that share
 * every phase's connections evenly and whose figures are merged as if they
 * were one (sums of counters, merged histogram bins and per-connection
 * means, timeline windows by absolute send time). One Deno process reading
 * 10k sockets schedules its reads unfairly: some connections are read
 * seconds late, which the measured latency tail would wrongly charge to the
 * server.
 */
class LoadGens {
  readonly gens: Child[];
  /** Live connections per generator after the last call that reported them. */
  #live: number[];

  constructor(count: number) {
    this.gens = Array.from(
      { length: count },
      (_, i) => new Child(`loadgen${i + 1}`, [...RUN, path("bench/loadgen.ts")]),
    );
    this.#live = this.gens.map(() => 0);
  }

  /** CPU seconds of all generators together. */
  cpuSeconds(): number {
    return this.gens.reduce((n, g) => n + cpuSeconds(g.pid), 0);
  }

  /** `count` shares, filling the generators that hold the fewest connections first. */
  #split(count: number): number[] {
    const share = this.#live.map(() => 0);
    for (let k = 0; k < count; k++) {
      let best = 0;
      for (let i = 1; i < share.length; i++) {
        if (this.#live[i]! + share[i]! < this.#live[best]! + share[best]!) best = i;
      }
      share[best]!++;
    }
    return share;
  }

  /**
   * Opens `spec.count` connections spread over the generators (keys stay
   * consecutive from `spec.keyStart`), `spec.concurrency` in flight in all.
   */
  async open(spec: Record<string, unknown>, timeout = 90_000): Promise<Record<string, any>> {
    await this.stats();
    const count = Number(spec.count);
    const shares = this.#split(count);
    shares.forEach((n, i) => {
      if (this.#live[i]! + n > MAX_PER_GEN) {
        throw new Error(
          `loadgen${i + 1} would hold ${this.#live[i]! + n} connections (> ${MAX_PER_GEN}): ` +
            `run with more --gens`,
        );
      }
    });
    const concurrency = Number(spec.concurrency ?? CONCURRENCY);
    let keyStart = Number(spec.keyStart ?? 0);
    const calls = this.gens.map((g, i) => {
      const n = shares[i]!;
      const at = keyStart;
      keyStart += n;
      if (n === 0) return Promise.resolve(null);
      return g.call({
        ...spec,
        count: n,
        keyStart: at,
        concurrency: Math.max(1, Math.round((concurrency * n) / Math.max(1, count))),
      }, timeout);
    });
    const rs = (await Promise.all(calls)).filter((r) => r !== null);
    await this.stats();
    return {
      opened: rs.reduce((n, r) => n + r.opened, 0),
      failed: rs.reduce((n, r) => n + r.failed, 0),
      errors: rs.flatMap((r) => r.errors).slice(0, 5),
      elapsedMs: Math.max(0, ...rs.map((r) => r.elapsedMs)),
      live: this.#live.reduce((a, b) => a + b, 0),
    };
  }

  /** Zeroes the counters; timeline windows count from now on every generator. */
  async reset(): Promise<void> {
    const t0 = nowMs();
    const rs = await Promise.all(this.gens.map((g) => g.call({ cmd: "reset", t0 })));
    this.#live = rs.map((r) => r.live as number);
  }

  /** Merged counters (live, deliveries, ...) without latency details. */
  async stats(): Promise<Record<string, any>> {
    return this.#merge(
      await Promise.all(this.gens.map((g) => g.call({ cmd: "stats", detail: false }))),
    );
  }

  /**
   * Waits on every generator until it has `perMember` deliveries for each
   * connection it held at the last reset (or `total`, shared in proportion),
   * or none arrived for `idleMs`; resolves with the merged figures.
   */
  async quiet(
    o: { idleMs: number; maxMs: number; perMember?: number; total?: number },
    timeout = 40_000,
  ): Promise<Record<string, any>> {
    const all = this.#live.reduce((a, b) => a + b, 0);
    const rs = await Promise.all(this.gens.map((g, i) => {
      const expect = o.perMember !== undefined
        ? o.perMember * this.#live[i]!
        : o.total !== undefined
        ? Math.ceil((o.total * this.#live[i]!) / Math.max(1, all))
        : undefined;
      return g.call({ cmd: "quiet", idleMs: o.idleMs, maxMs: o.maxMs, expect }, timeout);
    }));
    return this.#merge(rs);
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.gens.map((g) => g.call({ cmd: "close_all" })));
    this.#live = this.gens.map(() => 0);
  }

  async stop(): Promise<void> {
    await Promise.all(this.gens.map(async (g) => {
      await g.call({ cmd: "exit" }, 5_000).catch(() => {});
      await g.stop("SIGTERM", 3_000);
    }));
  }

  /** One figure set from the generators' snapshots, in the shape one generator used to give. */
  #merge(rs: Record<string, any>[]): Record<string, any> {
    this.#live = rs.map((r) => r.live as number);
    const sum = (k: string) => rs.reduce((n, r) => n + (r[k] as number), 0);
    const out: Record<string, any> = {};
    for (
      const k of [
        "deliveries",
        "disconnects",
        "wsCloses",
        "otherOps",
        "reads",
        "bytes",
        "closed",
        "errors",
        "live",
      ]
    ) out[k] = sum(k);
    const firsts = rs.map((r) => r.firstDeliveryAt as number).filter((t) => t > 0);
    out.firstDeliveryAt = firsts.length ? Math.min(...firsts) : 0;
    out.lastDeliveryAt = Math.max(0, ...rs.map((r) => r.lastDeliveryAt as number));
    if (rs.some((r) => r.hist === undefined)) return out;
    const h = new Histogram();
    for (const r of rs) h.merge(r.hist as CompactHistogram);
    // Bin edges are multiples of 0.05 ms: rounding only drops float noise.
    const q = (f: number) => {
      const v = h.quantile(f);
      return v === null ? null : Math.round(v * 100) / 100;
    };
    out.latency = {
      count: h.count,
      p50: q(0.5),
      p99: q(0.99),
      max: h.count ? h.max : null,
      mean: h.count ? h.sum / h.count : null,
    };
    out.perConnMeanLatency = perConnSpread(rs.flatMap((r) => r.perConnMeans as number[]));
    out.timeline = mergeTimeline(rs);
    out.perGen = rs.map((r) => ({
      live: r.live,
      deliveries: r.deliveries,
      p50: r.latency.p50,
      p99: r.latency.p99,
      max: r.latency.max,
    }));
    return out;
  }
}

/** Spread of per-connection mean latency: min, quartiles, max over connections that got any. */
function perConnSpread(means: number[]) {
  if (means.length === 0) return null;
  means.sort((a, b) => a - b);
  const q = (f: number) =>
    Math.round(means[Math.min(means.length - 1, Math.floor(f * means.length))]! * 10) / 10;
  return {
    conns: means.length,
    min: q(0),
    p25: q(0.25),
    p50: q(0.5),
    p75: q(0.75),
    p99: q(0.99),
    max: q(1),
  };
}

/**
 * The generators' fine windows (by absolute send time) in WINDOW_MS windows
 * from the earliest one: n, mean and max per window.
 */
function mergeTimeline(rs: Record<string, any>[]) {
  const fine: { at: number; n: number; sum: number; max: number }[] = [];
  for (const r of rs) {
    const w = r.windows as number[];
    for (let j = 0; j + 3 < w.length; j += 4) {
      fine.push({
        at: (r.timelineStart as number) + w[j]! * (r.fineWindowMs as number),
        n: w[j + 1]!,
        sum: w[j + 2]!,
        max: w[j + 3]!,
      });
    }
  }
  if (fine.length === 0) return [];
  const origin = Math.min(...fine.map((f) => f.at));
  const out: { n: number; sum: number; max: number }[] = [];
  for (const f of fine) {
    const i = Math.floor((f.at - origin + 1e-6) / WINDOW_MS);
    const e = out[i] ??= { n: 0, sum: 0, max: 0 };
    e.n += f.n;
    e.sum += f.sum;
    if (f.max > e.max) e.max = f.max;
  }
  return Array.from(out, (e, i) => ({
    at: (i * WINDOW_MS) / 1000,
    n: e?.n ?? 0,
    mean: e ? Math.round((e.sum / e.n) * 10) / 10 : null,
    max: e ? Math.round(e.max * 10) / 10 : null,
  }));
}

async function spawnBaseline(phase: string): Promise<{ child: Child; port: number }> {
  const prof = PROFILE === phase
    ? ["--cpu-prof", `--cpu-prof-dir=${PROF_DIR}`, `--cpu-prof-name=baseline-${phase}.cpuprofile`]
    : [];
  const child = new Child("baseline", [
    ...RUN,
    ...v8flags(EXPOSE_GC, false),
    ...prof,
    path("bench/baseline_server.ts"),
  ]);
  const m = await child.waitFor((l, s) => s === "out" ? /"port":(\d+)/.exec(l) : null);
  return { child, port: Number(m[1]) };
}

let limitFlags: string[] | undefined;

/**
 * Flags that lift the CLI's connection limits, where this version of the CLI
 * has them: every load connection comes from 127.0.0.1, so per-IP limits
 * (connections, connect rate) would measure the limiter, not the server.
 */
async function cometLimitFlags(): Promise<string[]> {
  if (limitFlags) return limitFlags;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...RUN, path("src/cli.ts"), "--help"],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "null",
  }).output();
  const help = new TextDecoder().decode(out.stdout);
  limitFlags = ["max-connections", "max-connections-per-ip", "connect-rate", "max-auth-attempts"]
    .filter((f) => help.includes(`--${f} `)).flatMap((f) => [`--${f}`, "0"]);
  results.settings.cometLimitFlags = [...limitFlags, ...COMET_FLAGS];
  results.settings.serverV8Flags = SERVER_V8_FLAGS;
  return limitFlags;
}

/** {@linkcode cometLimitFlags} less --max-connections: the per-IP limits alone. */
async function cometPerIpLimitFlags(): Promise<string[]> {
  const all = await cometLimitFlags();
  const out: string[] = [];
  for (let i = 0; i + 1 < all.length; i += 2) {
    if (all[i] !== "--max-connections") out.push(all[i]!, all[i + 1]!);
  }
  return out;
}

/** The commit and how many files under src/ differ from it. */
async function sourceState() {
  const git = async (...args: string[]) => {
    try {
      const o = await new Deno.Command("git", {
        args,
        cwd: ROOT.pathname,
        stdout: "piped",
        stderr: "null",
      })
        .output();
      return new TextDecoder().decode(o.stdout).trim();
    } catch {
      return "";
    }
  };
  const dirty = (await git("status", "--porcelain", "src", "mod.ts")).split("\n").filter(Boolean);
  return { commit: await git("rev-parse", "--short", "HEAD"), dirtyFiles: dirty.length };
}

interface CometProc {
  child: Child;
  tcp: number;
  ws: number;
  api: number;
  /** The command's flags after its listen addresses and log level. */
  flags: string[];
}

/**
 * Starts the real Comet CLI. With `gcHook` it runs through bench/comet_gc.ts,
 * which calls the same `main` and adds a SIGUSR2 handler that runs a full GC
 * (only with --expose-gc) so memory can be sampled after a collection. With
 * `defaults`, the command keeps its own heartbeat timeout, queue and
 * connection cap, and only the per-IP limits are lifted.
 */
async function spawnComet(
  phase: string,
  gcHook: boolean,
  extra: string[] = [],
  defaults = false,
): Promise<CometProc> {
  const prof = PROFILE === phase
    ? ["--cpu-prof", `--cpu-prof-dir=${PROF_DIR}`, `--cpu-prof-name=comet-${phase}.cpuprofile`]
    : [];
  const flags = [
    ...(defaults ? [] : ["--heartbeat-timeout", "10m", "--queue", String(QUEUE)]),
    ...(defaults ? await cometPerIpLimitFlags() : await cometLimitFlags()),
    ...COMET_FLAGS,
    ...extra,
  ];
  const args = [
    ...RUN,
    ...v8flags(gcHook && EXPOSE_GC, TRACE_GC === phase),
    ...prof,
    gcHook ? path("bench/comet_gc.ts") : path("src/cli.ts"),
    "--tcp",
    "127.0.0.1:0",
    "--ws",
    "127.0.0.1:0",
    "--api",
    "127.0.0.1:0",
    "--log",
    "info", // warn would hide the one "Comet listening" line the ports come from
    ...flags,
  ];
  const child = new Child(`comet(${phase})`, args);
  const m = await child.waitFor((l, s) =>
    s === "err" ? /Comet listening.* tcp=[^ ]*:(\d+) ws=[^ ]*:(\d+) api=[^ ]*:(\d+)/.exec(l) : null
  );
  return { child, tcp: Number(m[1]), ws: Number(m[2]), api: Number(m[3]), flags };
}

async function stopComet(c: CometProc, phase: string): Promise<void> {
  await c.child.stop("SIGTERM");
  if (TRACE_GC === phase) {
    const file = new URL(`trace-gc-${phase}.log`, OUT);
    Deno.writeTextFileSync(file, c.child.stderr);
    log(`trace-gc log: ${file.pathname}`);
  }
}

// ------------------------------------------------------------- HTTP client --

/**
 * A minimal HTTP/1.1 keep-alive client over one loopback connection: much
 * cheaper per request than fetch, so the pusher does not become the limit.
 * Request heads are cached per target; responses are parsed from bytes.
 */
class HttpClient {
  #conn: Deno.TcpConn;
  #buf = new Uint8Array(16_384);
  #rest: Uint8Array = new Uint8Array(0);
  #host: string;
  #heads = new Map<string, Uint8Array>();

  private constructor(conn: Deno.TcpConn, host: string) {
    this.#conn = conn;
    this.#host = host;
  }

  static async connect(port: number, hostname = "127.0.0.1"): Promise<HttpClient> {
    const conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true);
    return new HttpClient(conn, `${hostname}:${port}`);
  }

  /** POSTs `body`; resolves with the status and the response body bytes. */
  async post(target: string, body: Uint8Array): Promise<{ status: number; body: Uint8Array }> {
    const key = `${target} ${body.length}`;
    let head = this.#heads.get(key);
    if (head === undefined) {
      head = new TextEncoder().encode(
        `POST ${target} HTTP/1.1\r\nHost: ${this.#host}\r\n` +
          `Content-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      if (this.#heads.size < 10_000) this.#heads.set(key, head);
    }
    const req = new Uint8Array(head.length + body.length);
    req.set(head);
    req.set(body, head.length);
    let at = 0;
    while (at < req.length) at += await this.#conn.write(at === 0 ? req : req.subarray(at));
    return await this.#response();
  }

  async #fill(): Promise<void> {
    const n = await this.#conn.read(this.#buf);
    if (n === null) throw new Error("API connection closed");
    if (this.#rest.length === 0) {
      this.#rest = this.#buf.slice(0, n);
      return;
    }
    const joined = new Uint8Array(this.#rest.length + n);
    joined.set(this.#rest);
    joined.set(this.#buf.subarray(0, n), this.#rest.length);
    this.#rest = joined;
  }

  async #response(): Promise<{ status: number; body: Uint8Array }> {
    let end: number;
    while ((end = _indexOfCrlf2(this.#rest)) < 0) await this.#fill();
    const b = this.#rest;
    // "HTTP/1.1 200 "
    const status = (b[9]! - 48) * 100 + (b[10]! - 48) * 10 + (b[11]! - 48);
    const len = _contentLength(b, end);
    this.#rest = b.subarray(end + 4);
    if (len < 0) {
      const head = new TextDecoder().decode(b.subarray(0, end));
      throw new Error(`Response without a content-length: ${head}`);
    }
    while (this.#rest.length < len) await this.#fill();
    const body = this.#rest.subarray(0, len);
    this.#rest = this.#rest.subarray(len);
    return { status, body };
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // closed
    }
  }
}

function _indexOfCrlf2(b: Uint8Array): number {
  for (let i = 3; i < b.length; i++) {
    if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) return i - 3;
  }
  return -1;
}

const _CL = new TextEncoder().encode("\r\ncontent-length:");

/** The content-length value in the head `b[0..end)`, or -1. */
function _contentLength(b: Uint8Array, end: number): number {
  outer: for (let i = 0; i + _CL.length <= end; i++) {
    for (let j = 0; j < _CL.length; j++) {
      const c = b[i + j]!;
      if ((c >= 65 && c <= 90 ? c + 32 : c) !== _CL[j]) continue outer;
    }
    let k = i + _CL.length;
    while (b[k] === 32) k++;
    let n = 0;
    for (; k < end && b[k]! >= 48 && b[k]! <= 57; k++) n = n * 10 + b[k]! - 48;
    return n;
  }
  return -1;
}

const _OK = new TextEncoder().encode('{"code":0,');

/** A goim envelope with code 0. */
const ok = (r: { status: number; body: Uint8Array }) =>
  r.status === 200 && r.body.length >= _OK.length && _OK.every((c, i) => r.body[i] === c);

interface PushRun {
  ok: number;
  failed: number;
  elapsedMs: number;
  startAt: number;
  rate?: number;
  late?: number;
}

/** Room pushes of 64-byte stamped bodies: as fast as answered, or paced at `rate` per second. */
async function pushRoom(
  apiPort: number,
  ms: number,
  concurrency: number,
  rate?: number,
): Promise<PushRun> {
  const target = "/goim/push/room?operation=1000&type=live&room=bench";
  const clients = await Promise.all(
    Array.from({ length: concurrency }, () => HttpClient.connect(apiPort)),
  );
  let id = 0;
  let okCount = 0;
  let failed = 0;
  let late = 0;
  const startAt = nowMs();
  const start = performance.now();
  const deadline = start + ms;
  const send = async (c: HttpClient) => {
    try {
      if (ok(await c.post(target, pushBody(id++)))) okCount++;
      else failed++;
    } catch {
      failed++;
    }
  };
  if (rate === undefined) {
    await Promise.all(clients.map(async (c) => {
      while (performance.now() < deadline) await send(c);
    }));
  } else {
    // One push every 1000/rate ms on whichever connection is free.
    const free = [...clients];
    const inflight = new Set<Promise<void>>();
    const total = Math.min(Math.round((rate * ms) / 1000), 1_000_000);
    for (let k = 0; k < total && performance.now() < deadline + 1000; k++) {
      const due = start + (k * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      else if (wait < -5) late++;
      while (free.length === 0) await Promise.race(inflight);
      const c = free.pop()!;
      const p = send(c).then(() => {
        inflight.delete(p);
        free.push(c);
      });
      inflight.add(p);
    }
    await Promise.all(inflight);
  }
  const elapsedMs = performance.now() - start;
  for (const c of clients) c.close();
  return { ok: okCount, failed, elapsedMs, startAt, ...(rate !== undefined && { rate, late }) };
}

/** Single-key pushes round-robin over `keys` from `workers` keep-alive connections. */
async function pushKeys(apiPort: number, ms: number, workers: number, keys: string[]) {
  const clients = await Promise.all(
    Array.from({ length: workers }, () => HttpClient.connect(apiPort)),
  );
  let n = 0;
  let okCount = 0;
  let failed = 0;
  const start = performance.now();
  const deadline = start + ms;
  await Promise.all(clients.map(async (c) => {
    while (performance.now() < deadline) {
      const key = keys[n++ % keys.length]!;
      try {
        const r = await c.post(`/goim/push/keys?operation=1000&keys=${key}`, pushBody(n));
        if (ok(r)) okCount++;
        else failed++;
      } catch {
        failed++;
      }
    }
  }));
  const elapsedMs = performance.now() - start;
  for (const c of clients) c.close();
  return { ok: okCount, failed, elapsedMs, perSec: (okCount / elapsedMs) * 1000 };
}

// ------------------------------------------------------------- machine CPU --

/** Jiffies per state summed over all CPUs (/proc/stat "cpu" line). */
function procStat(): number[] {
  const line = readProc("/proc/stat").split("\n")[0]!;
  return line.trim().split(/\s+/).slice(1, 9).map(Number);
}

/**
 * Share of all cores, 0..1: busy (everything but idle and iowait), softirq
 * alone, and steal: time the hypervisor gave this VM's CPUs to someone else,
 * which slows every process here without showing in any of them (it counts
 * in "other" too). Measured here: 0 to 3% most of the time, 23 to 27% of all
 * cores in some minutes, when every per-handshake cost rose by half.
 */
function machineCpu(
  a: number[],
  b: number[],
): { busy: number; softirq: number; system: number; steal: number } {
  const d = b.map((x, i) => x - a[i]!);
  const total = d.reduce((n, x) => n + x, 0) || 1;
  const idle = d[3]! + d[4]!;
  return {
    busy: 1 - idle / total,
    softirq: d[6]! / total,
    system: d[2]! / total,
    steal: d[7]! / total,
  };
}

// ------------------------------------------------------------ kernel stats --

/**
 * Loopback and TCP counters that explain latency tails: packets the kernel
 * dropped from its receive backlog (netdev_max_backlog), retransmitted
 * segments, retransmission timeouts, tail-loss probes, zero-window adverts.
 */
function netCounters(): Record<string, number> {
  const out: Record<string, number> = { softnetDrops: 0 };
  for (const l of readProc("/proc/net/softnet_stat").trim().split("\n")) {
    out.softnetDrops! += parseInt(l.trim().split(/\s+/)[1]!, 16);
  }
  // Cross-CPU wake-ups (rescheduling and function-call interrupts, each a VM exit on a
  // hypervisor) and context switches: what a socket write costs beyond its own work.
  for (const l of readProc("/proc/interrupts").split("\n")) {
    const m = /^\s*(RES|CAL):((?:\s+\d+)+)/.exec(l);
    if (m) out[m[1]!] = m[2]!.trim().split(/\s+/).reduce((a, v) => a + Number(v), 0);
  }
  const ctxt = /^ctxt (\d+)/m.exec(readProc("/proc/stat"));
  if (ctxt) out.ctxt = Number(ctxt[1]);
  const want = ["RetransSegs", "TCPTimeouts", "TCPLossProbes", "TCPToZeroWindowAdv"];
  for (const file of ["/proc/net/snmp", "/proc/net/netstat"]) {
    const lines = readProc(file).trim().split("\n");
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const h = lines[i]!.split(/\s+/), v = lines[i + 1]!.split(/\s+/);
      h.forEach((name, j) => {
        if (want.includes(name)) out[name] = Number(v[j]);
      });
    }
  }
  return out;
}

function netDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(b).map((k) => [k, b[k]! - (a[k] ?? 0)]));
}

function netNote(n: Record<string, number>): string {
  return `net: ${n.softnetDrops} drops, ${n.RetransSegs} retrans, ${n.TCPTimeouts} RTOs`;
}

// --------------------------------------------------------------- contention --

/** Our processes (driver and children); everything else busy on the box is foreign load. */
const OURS = new Set<number>([Deno.pid]);

function procJiffies(pid: number): number | null {
  try {
    return cpuSeconds(pid) * 100;
  } catch {
    return null;
  }
}

/**
 * Samples every 500 ms: machine busy jiffies (minus softirq, which no process
 * is charged for) minus what our processes used. The running total of that
 * difference is the CPU other programs on this machine took from the run.
 */
class ContentionMonitor {
  /** Foreign cores in the last two sampling intervals. */
  recent: number[] = [];
  foreign = 0;
  elapsed = 0;
  #last = procStat();
  #lastAt = performance.now();
  #per = new Map<number, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

  start(): void {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 500);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #sample(): void {
    const now = procStat();
    const at = performance.now();
    let ours = 0;
    for (const pid of OURS) {
      const j = procJiffies(pid);
      if (j === null) {
        OURS.delete(pid);
        this.#per.delete(pid);
        continue;
      }
      const prev = this.#per.get(pid);
      if (prev !== undefined) ours += j - prev;
      this.#per.set(pid, j);
    }
    const d = now.map((x, i) => x - this.#last[i]!);
    const busy = d.reduce((n, x) => n + x, 0) - d[3]! - d[4]! - d[6]!;
    this.foreign += Math.max(0, busy - ours);
    this.recent.push(Math.max(0, busy - ours) / 100 / ((at - this.#lastAt) / 1000));
    if (this.recent.length > 2) this.recent.shift();
    this.elapsed += at - this.#lastAt;
    this.#last = now;
    this.#lastAt = at;
  }

  /** Snapshot for {@linkcode ContentionMonitor.since}. */
  mark(): { foreign: number; elapsed: number } {
    return { foreign: this.foreign, elapsed: this.elapsed };
  }

  /** Average foreign load in cores since `m`. */
  since(m: { foreign: number; elapsed: number }): number {
    const ms = this.elapsed - m.elapsed;
    return ms > 0 ? (this.foreign - m.foreign) / 100 / (ms / 1000) : 0;
  }
}

const monitor = new ContentionMonitor();

/**
 * Samples CPU (of `pids` and the load generators), the machine, foreign load
 * and network counters at the start of a measured run; the returned function
 * samples them again and gives each as a rate over `spanMs`.
 */
function measureFrom(pids: readonly number[], gen: LoadGens) {
  const cpu0 = pids.map(cpuSeconds);
  const g0 = gen.cpuSeconds();
  const m0 = procStat();
  const f0 = monitor.mark();
  const n0 = netCounters();
  return (spanMs: number) => {
    const sec = spanMs / 1000;
    return {
      cpu: pids.map((pid, i) => (cpuSeconds(pid) - cpu0[i]!) / sec),
      genCpu: (gen.cpuSeconds() - g0) / sec,
      machine: machineCpu(m0, procStat()),
      foreignCores: monitor.since(f0),
      net: netDelta(n0, netCounters()),
    };
  };
}

let gateBudgetMs = 60_000;
let retryBudgetMs = 60_000;
/** Runs disturbed by more than this many cores are measured again. */
const DISTURBED_CORES = 0.2;

/** Whether a disturbed run may be measured again: retry budget and deadline allow it. */
function mayRetry(): boolean {
  return retryBudgetMs > 0 && performance.now() <= HARD_DEADLINE - 60_000;
}

/**
 * Cores a measured run lost to others: other programs, or the hypervisor's
 * steal, whichever is more. Steal shows only in part as "other" (a stolen
 * CPU also stops the processes whose time would be subtracted): one run here
 * read 0.24 cores of other programs and 0.40 of steal.
 */
function disturbance(r: { foreignCores: number; machine?: { steal?: number } }): number {
  return Math.max(r.foreignCores, stealCores(r.machine));
}

/** A run's steal (a share of all cores in `machine`) in cores, like "other". */
function stealCores(machine?: { steal?: number }): number {
  return (machine?.steal ?? 0) * navigator.hardwareConcurrency;
}

/**
 * Runs a measurement; when other programs or the hypervisor took more than
 * 0.2 cores during it and the retry budget (60 s per harness run) allows,
 * runs it once more after the quiet gate and keeps the less disturbed result
 * (chosen by disturbance, never by its figures).
 */
async function measured<
  T extends { foreignCores: number; machine?: { steal?: number }; slowClosed?: number },
>(
  what: string,
  run: () => Promise<T>,
): Promise<T> {
  const first = await run();
  // A run that closed members changed the room: it is a result, not noise to retry away.
  if (
    disturbance(first) <= DISTURBED_CORES || (first.slowClosed ?? 0) > 0 || !mayRetry()
  ) {
    return first;
  }
  log(
    `  ${what}: other programs or steal took ${disturbance(first).toFixed(2)} cores; ` +
      `measuring again`,
  );
  const start = performance.now();
  const second = await run();
  retryBudgetMs -= performance.now() - start;
  const best = disturbance(second) < disturbance(first) ? second : first;
  return {
    ...best,
    // Members closed by either attempt count.
    ...(best.slowClosed !== undefined &&
      { slowClosed: (first.slowClosed ?? 0) + (second.slowClosed ?? 0) }),
    retried: {
      foreignCores: [first.foreignCores, second.foreignCores],
      disturbance: [disturbance(first), disturbance(second)],
    },
  };
}

/**
 * Before a measured run: when other programs used more than 0.15 cores over
 * the last second, waits for them to calm down, from a budget of 60 s for the
 * whole harness run.
 */
async function quietGate(): Promise<void> {
  const busy = () => monitor.recent.length > 0 && Math.max(...monitor.recent) > 0.15;
  if (!busy() || gateBudgetMs <= 0) return;
  const start = performance.now();
  while (busy() && performance.now() - start < gateBudgetMs) await sleep(250);
  const waited = performance.now() - start;
  gateBudgetMs -= waited;
  log(`  waited ${(waited / 1000).toFixed(1)} s for other programs to go quiet`);
}

/** Waits (bounded) until other programs use less than `max` cores. */
async function waitQuiet(max = 0.2, limitMs = 60_000): Promise<number> {
  const until = performance.now() + limitMs;
  for (;;) {
    const m = monitor.mark();
    await sleep(2_000);
    const load = monitor.since(m);
    if (load <= max || performance.now() > until) return load;
    log(`  other programs use ${load.toFixed(2)} cores; waiting for a quieter machine`);
  }
}

/** "server 0.93 gen 0.85 machine 0.97 (softirq 0.12, steal 0.00) other 0.01" for a log line. */
function cpuNote(r: {
  serverCpu: number;
  genCpu?: number;
  machine: { busy: number; softirq: number; steal?: number };
  foreignCores: number;
  net?: Record<string, number>;
}): string {
  return (r.net ? netNote(r.net) + "; " : "") + `cpu: server ${r.serverCpu.toFixed(2)}` +
    (r.genCpu === undefined ? "" : ` gen ${r.genCpu.toFixed(2)}`) +
    ` machine ${r.machine.busy.toFixed(2)} (softirq ${r.machine.softirq.toFixed(2)}, steal ${
      (r.machine.steal ?? 0).toFixed(2)
    })` +
    ` other ${r.foreignCores.toFixed(2)} cores`;
}

// ------------------------------------------------------------ write count --

let perfWorks: boolean | undefined;

/**
 * Counts a process's sendto(2) calls (Deno writes sockets with sendto) with
 * `perf stat` on the syscall tracepoint, if perf is there and allowed. The
 * returned function stops counting and resolves with the count, or null.
 */
async function countSendto(pid: number): Promise<() => Promise<number | null>> {
  if (perfWorks === false) return () => Promise.resolve(null);
  let proc: Deno.ChildProcess;
  try {
    proc = new Deno.Command("perf", {
      args: ["stat", "-x,", "-e", "syscalls:sys_enter_sendto", "-p", String(pid)],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch {
    perfWorks = false;
    return () => Promise.resolve(null);
  }
  OURS.add(proc.pid);
  await sleep(300); // perf attaches
  return async () => {
    try {
      proc.kill("SIGINT");
    } catch {
      // exited already (not allowed, or the process is gone)
    }
    const out = await proc.output();
    const m = /^(\d+),[^\n]*syscalls:sys_enter_sendto/m.exec(new TextDecoder().decode(out.stderr));
    perfWorks = m !== null;
    return m ? Number(m[1]) : null;
  };
}

// ------------------------------------------------------------------ memory --

type MemUsage = { rss: number; heapTotal: number; heapUsed: number; external: number };

async function settle(
  pid: number,
  gc: () => Promise<MemUsage | null>,
): Promise<{ rss: number[]; usage: MemUsage | null }> {
  await gc();
  await sleep(2_000);
  const a = rssBytes(pid);
  await sleep(1_000);
  const usage = await gc();
  await sleep(300);
  const b = rssBytes(pid);
  return { rss: [a, b], usage };
}

/** Runs a GC in the Comet child (bench/comet_gc.ts) and reads the memory line it prints. */
function cometGc(c: Child): () => Promise<MemUsage | null> {
  return async () => {
    const before = Date.now();
    c.proc.kill("SIGUSR2");
    try {
      const m = await c.waitFor((l, s) => {
        if (s !== "err") return null;
        const x = /BENCH_MEMORY (\{.*"at":(\d+)\})/.exec(l);
        return x && Number(x[2]) >= before - 5 ? x : null;
      }, 5_000);
      return JSON.parse(m[1]!);
    } catch {
      return null;
    }
  };
}

function heapNote(m: MemResult): string {
  if (m.perConnHeapUsed === null) return "heap n/a";
  return `V8 heap used ${(m.perConnHeapUsed / 1024).toFixed(2)} KiB, external ${
    ((m.perConnExternal ?? 0) / 1024).toFixed(2)
  } KiB`;
}

interface MemResult {
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
  machine: { busy: number; softirq: number; system: number; steal: number };
  foreignCores: number;
  errors: string[];
}

/**
 * Read buffer of each idle client of the memory and handshake phase: it gets
 * a 16-byte reply (over WebSocket after a short upgrade head) and nothing
 * more, and the generator grows a buffer for anything larger. At 4 KiB the
 * generators held 60 MB of buffers per phase that only ever took 16 bytes,
 * allocated on the cores the server shares.
 */
const MEM_CLIENT_BUF = 256;

async function measureMemory(
  gen: LoadGens,
  pid: number,
  gc: () => Promise<MemUsage | null>,
  open: Record<string, unknown>,
): Promise<MemResult> {
  // Warm-up: JIT both sides and let the server allocate its one-off structures.
  await gen.open({
    cmd: "open",
    concurrency: CONCURRENCY,
    bufSize: MEM_CLIENT_BUF,
    ...open,
    count: WARMUP,
    keyPrefix: "warm",
  }, 60_000);
  await gen.closeAll();
  await sleep(500);
  await gc();
  await sleep(1_000);
  await quietGate();
  const usageBefore = await gc();
  await sleep(300);
  const rssBefore = rssBytes(pid);
  const measured = measureFrom([pid], gen);
  const r = await gen.open(
    { cmd: "open", concurrency: CONCURRENCY, bufSize: MEM_CLIENT_BUF, ...open },
    90_000,
  );
  const m = measured(r.elapsedMs);
  const { rss: rssAfter, usage: usageAfter } = await settle(pid, gc);
  const conns = r.opened as number;
  const per = (k: keyof MemUsage) =>
    usageBefore && usageAfter ? (usageAfter[k] - usageBefore[k]) / Math.max(1, conns) : null;
  return {
    conns,
    failed: r.failed,
    rssBefore,
    rssAfter,
    perConnBytes: (rssAfter[1]! - rssBefore) / Math.max(1, conns),
    perConnHeapUsed: per("heapUsed"),
    perConnHeapTotal: per("heapTotal"),
    perConnExternal: per("external"),
    usageBefore,
    usageAfter,
    handshakeMs: r.elapsedMs,
    handshakesPerSec: (conns / r.elapsedMs) * 1000,
    serverCpu: m.cpu[0]!,
    genCpu: m.genCpu,
    machine: m.machine,
    foreignCores: m.foreignCores,
    errors: r.errors,
  };
}

// ----------------------------------------------------------------- fan-out --

/** What every room-push run reports, on one node or a cluster. */
interface RoomPushRun {
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
  latency: Record<string, number | null>;
  serverCpu: number;
  genCpu: number;
  pusherCpu: number;
  machine: { busy: number; softirq: number; system: number; steal: number };
  foreignCores: number;
  net: Record<string, number>;
  perConnMeanLatency: Record<string, number> | null;
  timeline: { at: number; n: number; mean: number | null; max: number | null }[];
}

interface FanResult extends RoomPushRun {
  size: number;
  disconnects: number;
  closed: number;
  framesPerRead: number;
  writes: number | null;
  framesPerWrite: number | null;
}

/**
 * Room pushes into `api` for `ms` (at `rate`, or as fast as it answers)
 * while the processes `pids` are measured: the figures every room-push run
 * reports, each process's CPU in cores, and what the generators counted.
 */
async function roomPushRun(
  gen: LoadGens,
  api: number,
  pids: readonly number[],
  ms: number,
  rate?: number,
): Promise<{ run: Omit<RoomPushRun, "serverCpu">; cpu: number[]; s: Record<string, any> }> {
  await quietGate();
  await gen.reset();
  // Members still connected now: the slow-consumer policy may have closed some earlier.
  const members = (await gen.stats()).live as number;
  const measured = measureFrom(pids, gen);
  const d0 = cpuSeconds(Deno.pid);
  const push = await pushRoom(api, ms, PUSHERS, rate);
  const d1 = cpuSeconds(Deno.pid);
  const expected = push.ok * members;
  const s = await gen.quiet({ idleMs: 500, maxMs: 20_000, perMember: push.ok });
  const span = Math.max(push.elapsedMs, (s.lastDeliveryAt as number) - push.startAt);
  const m = measured(span);
  const run = {
    members,
    membersAfter: s.live,
    slowClosed: s.disconnects,
    pushesOk: push.ok,
    pushesFailed: push.failed,
    pushMs: push.elapsedMs,
    deliveries: s.deliveries,
    expected,
    lost: expected - s.deliveries,
    deliveriesPerSec: (s.deliveries / span) * 1000,
    pushesPerSec: (push.ok / push.elapsedMs) * 1000,
    latency: s.latency,
    genCpu: m.genCpu,
    pusherCpu: (d1 - d0) / (push.elapsedMs / 1000),
    machine: m.machine,
    foreignCores: m.foreignCores,
    net: m.net,
    perConnMeanLatency: s.perConnMeanLatency,
    timeline: s.timeline,
  };
  return { run, cpu: m.cpu, s };
}

async function cometFanRun(
  gen: LoadGens,
  comet: CometProc,
  size: number,
  ms: number,
  rate?: number,
): Promise<FanResult> {
  const stopCount = await countSendto(comet.child.pid);
  const { run, cpu, s } = await roomPushRun(gen, comet.api, [comet.child.pid], ms, rate);
  const sends = await stopCount();
  // One sendto per API response; the rest carry deliveries.
  const deliveryWrites = sends === null
    ? null
    : Math.max(1, sends - run.pushesOk - run.pushesFailed);
  return {
    size,
    ...run,
    serverCpu: cpu[0]!,
    disconnects: s.disconnects,
    closed: s.closed,
    framesPerRead: s.deliveries / Math.max(1, s.reads),
    writes: deliveryWrites,
    framesPerWrite: deliveryWrites === null ? null : s.deliveries / deliveryWrites,
  };
}

async function baselineFanRun(
  gen: LoadGens,
  base: Child,
  size: number,
  ms: number,
  frames: number,
  k = BASE_INFLIGHT,
) {
  await quietGate();
  await gen.reset();
  const stopCount = await countSendto(base.pid);
  const measured = measureFrom([base.pid], gen);
  const startAt = nowMs();
  const r = await base.call({ cmd: "fanout", ms, frames, k }, ms + 60_000);
  const expected = r.batches * r.conns * r.frames;
  const s = await gen.quiet({ idleMs: 500, maxMs: 20_000, perMember: r.batches * r.frames });
  const span = Math.max(r.elapsedMs, (s.lastDeliveryAt as number) - startAt);
  const m = measured(span);
  const sends = await stopCount();
  return {
    size,
    framesPerBatch: frames,
    inflight: k === 0 ? "unbounded" : k,
    members: r.conns,
    writes: sends,
    framesPerWrite: sends === null ? null : s.deliveries / Math.max(1, sends),
    batches: r.batches,
    deliveries: s.deliveries,
    expected,
    lost: expected - s.deliveries,
    deliveriesPerSec: (s.deliveries / span) * 1000,
    batchesPerSec: (r.batches / r.elapsedMs) * 1000,
    latency: s.latency,
    serverCpu: m.cpu[0]!,
    genCpu: m.genCpu,
    machine: m.machine,
    foreignCores: m.foreignCores,
    net: m.net,
    framesPerRead: s.deliveries / Math.max(1, s.reads),
  };
}

/** The baseline's coalescing writers fed at `rate` frames/s: the runtime's latency at that rate. */
async function baselineStreamRun(
  gen: LoadGens,
  base: Child,
  size: number,
  ms: number,
  rate: number,
) {
  await quietGate();
  await gen.reset();
  const stopCount = await countSendto(base.pid);
  const measured = measureFrom([base.pid], gen);
  const startAt = nowMs();
  const r = await base.call({ cmd: "stream", ms, rate, k: BASE_INFLIGHT }, ms + 60_000);
  const expected = r.produced * r.conns;
  const s = await gen.quiet({ idleMs: 500, maxMs: 20_000, perMember: r.produced });
  const span = Math.max(r.elapsedMs, (s.lastDeliveryAt as number) - startAt);
  const m = measured(span);
  const sends = await stopCount();
  return {
    size,
    rate,
    inflight: BASE_INFLIGHT,
    members: r.conns,
    produced: r.produced,
    writes: sends,
    framesPerWrite: sends === null ? null : s.deliveries / Math.max(1, sends),
    deliveries: s.deliveries,
    expected,
    lost: expected - s.deliveries,
    deliveriesPerSec: (s.deliveries / span) * 1000,
    latency: s.latency,
    serverCpu: m.cpu[0]!,
    genCpu: m.genCpu,
    machine: m.machine,
    foreignCores: m.foreignCores,
    net: m.net,
    perConnMeanLatency: s.perConnMeanLatency,
    timeline: s.timeline,
    perGen: s.perGen,
  };
}

let keysOpened = 0;

/**
 * Opens connections until `size` are in the room (counting the live ones: the
 * slow-consumer policy may have closed some); returns the live count.
 */
async function grow(gen: LoadGens, _have: number, size: number, open: Record<string, unknown>) {
  const live = (await gen.stats()).live as number;
  if (size <= live) return live;
  const r = await gen.open({
    cmd: "open",
    count: size - live,
    keyStart: keysOpened,
    concurrency: CONCURRENCY,
    bufSize: CLIENT_BUF,
    ...open,
  }, 90_000);
  keysOpened += size - live;
  if (r.failed > 0) log(`  ${r.failed} connections failed: ${r.errors.join("; ")}`);
  return r.live as number;
}

// -------------------------------------------------------------------- run --

const results: Record<string, any> = {
  date: new Date().toISOString(),
  deno: Deno.version,
  machine: machine(),
  settings: {
    memConns: MEM_CONNS,
    roomSizes: SIZES,
    saturationMs: RUN_MS,
    latencyMs: LAT_MS,
    pusherConcurrency: PUSHERS,
    connectConcurrency: CONCURRENCY,
    queue: QUEUE,
    bodyBytes: BODY,
    exposeGc: EXPOSE_GC,
    quick: QUICK,
    clusterMembers: CLUSTER_MEMBERS,
    clusterMs: CLUSTER_MS,
    gens: GENS,
    clientBuf: CLIENT_BUF,
    baselineInflight: BASE_INFLIGHT,
    burstMembers: BURST_MEMBERS,
    burstPushes: BURST_PUSHES,
    burstIdleMs: BURST_IDLE_MS,
  },
  micro: null,
  baseline: {},
  comet: {},
};

function machine() {
  const mem = readProc("/proc/meminfo");
  const cpu = readProc("/proc/cpuinfo");
  return {
    nproc: navigator.hardwareConcurrency,
    memTotalKiB: Number(/MemTotal:\s+(\d+)/.exec(mem)?.[1] ?? 0),
    cpu: /model name\s*:\s*(.*)/.exec(cpu)?.[1] ?? "unknown",
    kernel: readProc("/proc/sys/kernel/osrelease").trim(),
    openFilesLimit: _nofile(),
  };
}

function _nofile(): number | null {
  try {
    const limits = readProc(`/proc/${Deno.pid}/limits`);
    return Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? NaN);
  } catch {
    return null;
  }
}

async function micro(): Promise<void> {
  log("micro benchmarks (deno bench)");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["bench", "--json", path("bench/micro_bench.ts")],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    log(`micro benchmarks failed:\n${new TextDecoder().decode(out.stderr)}`);
    return;
  }
  const json = JSON.parse(new TextDecoder().decode(out.stdout));
  results.micro = json.benches.map((b: any) => ({
    group: b.group,
    name: b.name,
    ...(b.results[0]?.ok ?? { error: JSON.stringify(b.results[0]) }),
  }));
}

async function baselineMemPhase(gen: LoadGens): Promise<void> {
  log("baseline: plain Deno TCP server, memory and connect rate");
  log(`  ${MEM_CONNS} idle connections (connect + 16-byte reply, ${CONCURRENCY} in flight)`);
  // A fresh server per attempt: a second run into the same process would
  // find its heap grown by the first and measure less.
  results.baseline.memory = await measured("baseline memory", async () => {
    const { child: base, port } = await spawnBaseline("baseline-mem");
    const gc = async () => (await base.call({ cmd: "gc" })).memory as MemUsage;
    try {
      const mem = await measureMemory(gen, base.pid, gc, {
        kind: "raw",
        port,
        count: MEM_CONNS,
        keyPrefix: "m",
      });
      log(
        `  RSS/conn ${(mem.perConnBytes / 1024).toFixed(2)} KiB (${heapNote(mem)}), ` +
          `${mem.handshakesPerSec.toFixed(0)} connect+reply/s, ${cpuNote(mem)}`,
      );
      await gen.closeAll();
      return mem;
    } finally {
      await base.stop("SIGTERM", 3_000);
    }
  });
}

/** Comet's frames per write at `size` in a saturation run of `kind`, rounded; 1 if unknown. */
function cometFramesPerWrite(kind: string, size: number): number {
  const run = (results.comet[`fanout_${kind}`] as FanResult[] | undefined)?.find((r) =>
    r.size === size
  );
  const f = run?.framesPerWrite ?? run?.framesPerRead ?? 1;
  return Math.max(1, Math.round(f));
}

/**
 * The runtime ceiling, after Comet's fan-out runs: at every room size, one
 * frame per write (the literal baseline), and the same number of frames per
 * write as Comet's writers managed (same bytes, same number of writes): the
 * fair ceiling for a server that coalesces queued frames.
 */
async function baselineFanPhase(gen: LoadGens): Promise<void> {
  log("baseline: plain Deno TCP server, fan-out ceiling");
  const { child: base, port } = await spawnBaseline("baseline-fan");
  results.baseline.fanout = [];
  results.baseline.fanout_matched = [];
  try {
    let have = 0;
    for (const size of SIZES) {
      checkDeadline("baseline fan-out");
      have = await grow(gen, have, size, { kind: "raw", port, keyPrefix: "f" });
      const ks = new Map<number, string[]>([[1, ["1"]]]);
      for (const kind of ["tcp", "ws"]) {
        if (!results.comet[`fanout_${kind}`]) continue;
        const k = cometFramesPerWrite(kind, size);
        ks.set(k, [...(ks.get(k) ?? []), kind]);
      }
      for (const [k, tags] of ks) {
        const r = await measured(
          `baseline fan-out ${size}`,
          () => baselineFanRun(gen, base, size, RUN_MS, k),
        );
        if (k === 1) results.baseline.fanout.push(r);
        for (const t of tags) {
          if (t !== "1") results.baseline.fanout_matched.push({ ...r, matches: t });
        }
        log(
          `  fan-out ${size}, ${k} frame(s)/write: ${
            r.deliveriesPerSec.toFixed(0)
          } deliveries/s, ` +
            `${r.batchesPerSec.toFixed(1)} batches/s, lost ${r.lost}, ${cpuNote(r)}`,
        );
      }
    }
    // For context: the same fan-out with every write issued at once (one
    // promise per connection), the way this baseline used to write.
    {
      checkDeadline("baseline unbounded fan-out");
      const r = await measured(
        `baseline fan-out ${have}, unbounded`,
        () => baselineFanRun(gen, base, have, RUN_MS, 1, 0),
      );
      results.baseline.fanout_unbounded = r;
      log(
        `  fan-out ${have}, 1 frame/write, all writes at once: ` +
          `${r.deliveriesPerSec.toFixed(0)} deliveries/s, ${r.batchesPerSec.toFixed(1)} ` +
          `batches/s, p99 ${r.latency.p99} max ${r.latency.max?.toFixed(0)} ms, lost ${r.lost}, ` +
          cpuNote(r),
      );
    }
    // The runtime's own latency at the rates Comet's latency runs used; at
    // fixed rates when Comet's runs are not part of this harness run.
    results.baseline.stream = [];
    const rates: { kind: string; fraction: number; rate: number }[] = [];
    for (const kind of ["tcp", "ws"]) {
      for (const lat of (results.comet[`latency_sweep_${kind}`] as any[] | undefined) ?? []) {
        if (kind === "ws" && lat.fraction !== 0.5) continue;
        rates.push({ kind, fraction: lat.fraction, rate: lat.pushesPerSec });
      }
    }
    if (rates.length === 0) {
      for (const rate of STREAM_RATES) rates.push({ kind: "fixed", fraction: -1, rate });
    }
    for (const { kind, fraction, rate } of rates) {
      checkDeadline("baseline stream");
      const r = await measured(
        "baseline stream",
        () => baselineStreamRun(gen, base, have, LAT_MS, rate),
      );
      results.baseline.stream.push({ ...r, matches: kind, fraction });
      log(
        `  stream ${kind === "fixed" ? "" : `at ${kind}'s ${fraction} rate `}` +
          `(${r.rate.toFixed(1)}/s): ` +
          `p50 ${r.latency.p50} p99 ${r.latency.p99} max ${r.latency.max?.toFixed(0)} ms, ` +
          `${r.deliveriesPerSec.toFixed(0)}/s, lost ${r.lost}, ` +
          `${r.framesPerWrite?.toFixed(1)} frames/write, ${cpuNote(r)}`,
      );
    }
    await gen.closeAll();
  } finally {
    await base.stop("SIGTERM", 3_000);
  }
}

/** The pairs of one transport, and the median of the undisturbed ones' ratios. */
interface PairsResult {
  members: number;
  pairs: FanPair[];
  medianRatio: number | null;
}

/** One pair of the fanout-pairs phase. */
interface FanPair {
  comet: FanResult;
  baseline: Awaited<ReturnType<typeof baselineFanRun>>;
  ratio: number;
  /** Cores lost to other programs or steal during each run. */
  disturbance: [number, number];
  /** Per socket write of each run: server CPU in µs, and context switches on the machine. */
  perWrite: [WriteCost | null, WriteCost | null];
  /** Measured again and left out of the median: see {@linkcode pairedFanPhase}. */
  disturbed?: true;
}

interface WriteCost {
  cpuUs: number;
  contextSwitches: number;
}

/**
 * What one socket write cost the server in a fan-out run, and how many
 * context switches the machine made per write, so that a pair's gap can be
 * told apart into the server's own CPU and what the machine did around it.
 */
function writeCost(
  r: {
    writes: number | null;
    serverCpu: number;
    deliveries: number;
    deliveriesPerSec: number;
    net: Record<string, number>;
  },
): WriteCost | null {
  if (!r.writes || !(r.deliveriesPerSec > 0)) return null;
  const seconds = r.deliveries / r.deliveriesPerSec;
  return {
    cpuUs: (r.serverCpu * seconds * 1e6) / r.writes,
    contextSwitches: (r.net.ctxt ?? NaN) / r.writes,
  };
}

/**
 * The fan-out targets measured as pairs: a Comet saturation run at the
 * largest room, then plain Deno (over TCP) writing the frames per write that
 * run made, `PAIRS` times over TCP and `WS_PAIRS` times with Comet over
 * WebSocket, both servers up throughout and each run on its own
 * freshly opened members (the generators count deliveries for every client
 * they hold). The median ratio of the undisturbed pairs is the figure; every
 * pair is kept. A pair in which other programs or the hypervisor took more
 * than 0.2 cores from either run is measured again while the retry budget
 * lasts, as `measured()` does for single runs.
 */
async function pairedFanPhase(gen: LoadGens): Promise<void> {
  const comet = await spawnComet("fanout-pairs", false);
  const { child: base, port } = await spawnBaseline("fanout-pairs");
  try {
    await gen.closeAll();
    for (const [kind, count] of [["tcp", PAIRS], ["ws", WS_PAIRS]] as const) {
      if (count > 0) await fanPairs(gen, kind, count, comet, base, port);
    }
  } finally {
    await stopComet(comet, "fanout-pairs");
    await base.stop("SIGTERM", 3_000);
  }
}

/** `count` undisturbed pairs of Comet over `kind` and plain Deno over TCP; see {@linkcode pairedFanPhase}. */
async function fanPairs(
  gen: LoadGens,
  kind: "tcp" | "ws",
  count: number,
  comet: CometProc,
  base: Child,
  port: number,
): Promise<void> {
  const K = kind.toUpperCase();
  log(
    `paired fan-out: ${FAN} ${K} members, Comet and plain Deno (TCP) alternating, ${count} pairs`,
  );
  const pairs: FanPair[] = [];
  const record: PairsResult = { members: FAN, pairs, medianRatio: null };
  results[`fanout_pairs_${kind}`] = record;
  const cometRun = async (ms: number) => {
    const cometPort = kind === "tcp" ? comet.tcp : comet.ws;
    await grow(gen, 0, FAN, { kind, port: cometPort, keyPrefix: `p${kind}` });
    try {
      return await cometFanRun(gen, comet, FAN, ms);
    } finally {
      await gen.closeAll();
    }
  };
  const baseRun = async (ms: number, frames: number) => {
    await grow(gen, 0, FAN, { kind: "raw", port, keyPrefix: "pb" });
    try {
      return await baselineFanRun(gen, base, FAN, ms, frames);
    } finally {
      await gen.closeAll();
    }
  };
  const cpu = (r: { serverCpu: number; genCpu: number; machine: { steal: number } }) =>
    `server ${r.serverCpu.toFixed(2)} gen ${r.genCpu.toFixed(2)} ` +
    `steal ${stealCores(r.machine).toFixed(2)} cores`;
  // Warm-up: both JITs compile their hot paths before anything counts.
  const warm = await cometRun(1_000);
  await baseRun(1_000, Math.max(1, Math.round(warm.framesPerWrite ?? warm.framesPerRead)));
  let clean = 0;
  for (let i = 0; clean < count; i++) {
    checkDeadline(`paired ${kind} fan-out`);
    const start = performance.now();
    const c = await cometRun(RUN_MS);
    const frames = Math.max(1, Math.round(c.framesPerWrite ?? c.framesPerRead));
    const b = await baseRun(RUN_MS, frames);
    const pair: FanPair = {
      comet: c,
      baseline: b,
      ratio: c.deliveriesPerSec / b.deliveriesPerSec,
      disturbance: [disturbance(c), disturbance(b)],
      perWrite: [writeCost(c), writeCost(b)],
    };
    pairs.push(pair);
    const disturbed = Math.max(...pair.disturbance) > DISTURBED_CORES;
    if (disturbed) pair.disturbed = true;
    else clean++;
    const [cw, bw] = pair.perWrite;
    log(
      `  ${K} pair ${i + 1}: Comet ${c.deliveriesPerSec.toFixed(0)}/s (${cpu(c)}), plain Deno ` +
        `at ${frames} frames/write ${b.deliveriesPerSec.toFixed(0)}/s (${cpu(b)}): ` +
        `${pair.ratio.toFixed(2)}x, lost ${c.lost} and ${b.lost}` +
        (cw && bw
          ? `; per write ${cw.cpuUs.toFixed(1)} vs ${bw.cpuUs.toFixed(1)} µs server CPU, ` +
            `${cw.contextSwitches.toFixed(2)} vs ${bw.contextSwitches.toFixed(2)} context switches`
          : ""),
    );
    if (disturbed) {
      const again = mayRetry();
      log(
        `  ${K} pair ${i + 1}: other programs or steal took ${
          Math.max(...pair.disturbance).toFixed(2)
        } cores; ${again ? "measuring another pair" : "no retry budget left, counted"}`,
      );
      if (again) retryBudgetMs -= performance.now() - start;
      else {
        delete pair.disturbed;
        clean++;
      }
    }
  }
  const sorted = pairs.filter((p) => !p.disturbed).map((p) => p.ratio).sort((x, y) => x - y);
  record.medianRatio = sorted[(sorted.length - 1) >> 1]! / 2 + sorted[sorted.length >> 1]! / 2;
}

async function memPhase(gen: LoadGens, kind: "tcp" | "ws", phase: string): Promise<void> {
  log(`comet: ${MEM_CONNS} idle ${kind} connections`);
  // A fresh server per attempt, as for the baseline.
  results.comet[`memory_${kind}`] = await measured(`comet memory ${kind}`, async () => {
    const comet = await spawnComet(phase, true);
    try {
      const mem = await measureMemory(gen, comet.child.pid, cometGc(comet.child), {
        kind,
        port: kind === "tcp" ? comet.tcp : comet.ws,
        count: MEM_CONNS,
        keyPrefix: kind === "tcp" ? "mt" : "mw",
      });
      log(
        `  RSS/conn ${(mem.perConnBytes / 1024).toFixed(2)} KiB (${heapNote(mem)}), ` +
          `${mem.handshakesPerSec.toFixed(0)} connect+auth/s (${mem.failed} failed), ` +
          cpuNote(mem),
      );
      await gen.closeAll();
      return mem;
    } finally {
      await stopComet(comet, phase);
    }
  });
}

/** The Deno.serve WebSocket handler, if the project has one yet. */
async function memServePhase(gen: LoadGens): Promise<void> {
  let present = false;
  try {
    Deno.statSync(path("src/transport/socket_wire.ts"));
    const mod = await import(new URL("mod.ts", ROOT).href);
    present = typeof mod.createCometHandler === "function";
  } catch {
    present = false;
  }
  if (!present) {
    log("Deno.serve WebSocket handler not present (createCometHandler): skipped");
    results.comet.memory_serve = { skipped: "handler not present" };
    return;
  }
  log(`comet: ${MEM_CONNS} idle WebSocket connections through Deno.serve + createCometHandler`);
  const child = new Child("comet(Deno.serve)", [
    ...RUN,
    ...v8flags(EXPOSE_GC, false),
    path("bench/serve_handler_server.ts"),
  ]);
  try {
    const m = await child.waitFor((l, s) => s === "out" ? /"port":(\d+)/.exec(l) : null);
    const mem = await measureMemory(
      gen,
      child.pid,
      async () => (await child.call({ cmd: "gc" })).memory as MemUsage,
      { kind: "ws", port: Number(m[1]), count: MEM_CONNS, keyPrefix: "ms" },
    );
    results.comet.memory_serve = mem;
    log(
      `  RSS/conn ${(mem.perConnBytes / 1024).toFixed(2)} KiB (${heapNote(mem)}), ${cpuNote(mem)}`,
    );
    await gen.closeAll();
  } catch (err) {
    log(`  Deno.serve phase failed: ${(err as Error).message.slice(0, 500)}`);
    results.comet.memory_serve = { error: (err as Error).message.slice(0, 2000) };
    await gen.closeAll().catch(() => {});
  } finally {
    await child.stop("SIGTERM", 3_000);
  }
}

async function fanPhase(gen: LoadGens, kind: "tcp" | "ws", phase: string): Promise<void> {
  log(`comet: room fan-out over ${kind}, room sizes ${SIZES.join(", ")}`);
  const comet = await spawnComet(phase, false);
  const runs: FanResult[] = [];
  results.comet[`fanout_${kind}`] = runs;
  try {
    const port = kind === "tcp" ? comet.tcp : comet.ws;
    let have = 0;
    for (const size of SIZES) {
      checkDeadline(`${kind} fan-out`);
      const r = await measured(`${kind} fan-out ${size}`, async () => {
        have = await grow(gen, have, size, { kind, port, keyPrefix: `f${kind}` });
        return await cometFanRun(gen, comet, have, RUN_MS);
      });
      runs.push(r);
      log(
        `  fan-out ${size}: ${r.deliveriesPerSec.toFixed(0)} deliveries/s, ` +
          `${r.pushesPerSec.toFixed(1)} pushes/s, lost ${r.lost}, ` +
          `p50 ${r.latency.p50} p99 ${r.latency.p99} ms, ` +
          (r.slowClosed ? `${r.slowClosed} members closed as slow consumers, ` : "") +
          `${r.framesPerWrite?.toFixed(1)} frames/write, pusher cpu ${r.pusherCpu.toFixed(2)}, ` +
          cpuNote(r),
      );
    }
    // Latency at half the measured maximum rate, at the largest size; then,
    // for context, at lower fractions of it (TCP) to see where p99 lands.
    const top = runs[runs.length - 1]!;
    const sweep: FanResult[] = [];
    results.comet[`latency_sweep_${kind}`] = sweep;
    // The last entry is a fixed low rate: the latency floor at this room size.
    for (const fraction of kind === "tcp" ? [2, 4, 8, 0] : [2, 0]) {
      checkDeadline(`${kind} latency`);
      const rate = fraction === 0 ? LOW_RATE : top.deliveriesPerSec / fraction / FAN;
      const lat = {
        ...(await measured(`${kind} latency`, async () => {
          have = await grow(gen, have, FAN, { kind, port, keyPrefix: `f${kind}` });
          return await cometFanRun(gen, comet, have, LAT_MS, rate);
        })),
        fraction: fraction === 0 ? 0 : 1 / fraction,
      };
      sweep.push(lat);
      if (fraction === 2) results.comet[`latency_${kind}`] = lat;
      log(
        `  ${fraction ? `1/${fraction} of max` : "fixed low rate"} (${
          rate.toFixed(1)
        } pushes/s): ` +
          `p50 ${lat.latency.p50} ` +
          `p99 ${lat.latency.p99} max ${lat.latency.max?.toFixed(1)} ms, ` +
          `${lat.deliveriesPerSec.toFixed(0)} deliveries/s, lost ${lat.lost}, ` +
          `${lat.framesPerWrite?.toFixed(1)} frames/write, ${cpuNote(lat)}`,
      );
    }
    if (kind === "tcp") {
      checkDeadline("push keys");
      log(`comet: single-key pushes, ${KEY_WORKERS} keep-alive connections, ${KEY_CONNS} keys`);
      const r = await gen.open({
        cmd: "open",
        kind: "tcp",
        port: comet.tcp,
        count: KEY_CONNS,
        room: "live://keys",
        keyPrefix: "k",
        concurrency: CONCURRENCY,
      }, 60_000);
      await quietGate();
      await gen.reset();
      const keys = Array.from({ length: r.opened as number }, (_, i) => `k${i}`);
      const cpu0 = cpuSeconds(comet.child.pid);
      const d0 = cpuSeconds(Deno.pid);
      const pk = await pushKeys(comet.api, KEYS_MS, KEY_WORKERS, keys);
      const d1 = cpuSeconds(Deno.pid);
      const s = await gen.quiet({ idleMs: 300, maxMs: 10_000, total: pk.ok });
      const cpu1 = cpuSeconds(comet.child.pid);
      results.comet.push_keys = {
        ...pk,
        deliveries: s.deliveries,
        lost: pk.ok - s.deliveries,
        latency: s.latency,
        serverCpu: (cpu1 - cpu0) / (pk.elapsedMs / 1000),
        pusherCpu: (d1 - d0) / (pk.elapsedMs / 1000),
      };
      log(
        `  ${pk.perSec.toFixed(0)} pushes/s, ${s.deliveries} delivered, lost ${
          pk.ok - s.deliveries
        }` +
          `, server cpu ${results.comet.push_keys.serverCpu.toFixed(2)}` +
          `, pusher cpu ${results.comet.push_keys.pusherCpu.toFixed(2)}`,
      );
    }
    await gen.closeAll();
  } finally {
    await stopComet(comet, phase);
  }
}

// ----------------------------------------------------------------- cluster --

interface ClusterRun extends RoomPushRun {
  nodes: number;
  perNode: number[];
  /** CPU of each node in cores over the run; `serverCpu` is their sum. */
  nodeCpu: number[];
  redisCpu: number;
}

/** GET /goim/online/room for live://bench on `api`: the cluster-wide member count, or -1. */
async function roomOnline(api: number): Promise<number> {
  try {
    const r = await fetch(`http://127.0.0.1:${api}/goim/online/room?type=live&rooms=bench`, {
      signal: AbortSignal.timeout(2_000),
    });
    const j = await r.json();
    return typeof j?.data?.bench === "number" ? j.data.bench : -1;
  } catch {
    return -1;
  }
}

/**
 * Waits (at most `limitMs`) until node 1's API counts `want` members of
 * live://bench cluster-wide and Redis lists `nodes` nodes for the room.
 */
async function waitRoomReady(
  api: number,
  redis: RedisServer,
  want: number,
  nodes: number,
  limitMs = 15_000,
): Promise<{ online: number; roomNodes: number; waitedMs: number }> {
  const start = performance.now();
  let online = -1, roomNodes = -1;
  while (performance.now() - start < limitMs) {
    online = await roomOnline(api);
    const card = await redisCommand(redis.port, "SCARD", "comet:room:live://bench").catch(() => "");
    roomNodes = /^:(\d+)/.test(card) ? Number(card.slice(1, card.indexOf("\r"))) : -1;
    if (online >= want && roomNodes >= nodes) break;
    await sleep(100);
  }
  return { online, roomNodes, waitedMs: performance.now() - start };
}

/** Room pushes into node 1's API as fast as it answers; deliveries counted on every node. */
async function clusterFanRun(
  gen: LoadGens,
  nodes: CometProc[],
  redis: RedisServer,
  perNode: number[],
  ms: number,
): Promise<ClusterRun> {
  // The nodes, then Redis.
  const pids = [...nodes.map((n) => n.child.pid), redis.pid!];
  const { run, cpu } = await roomPushRun(gen, nodes[0]!.api, pids, ms);
  const nodeCpu = cpu.slice(0, nodes.length);
  return {
    nodes: nodes.length,
    perNode,
    ...run,
    nodeCpu,
    serverCpu: nodeCpu.reduce((a, b) => a + b, 0),
    redisCpu: cpu[nodes.length]!,
  };
}

/** Starts `count` Comet nodes on one Redis, opens the members over them, measures one run. */
async function clusterRun(gen: LoadGens, redis: RedisServer, count: number): Promise<ClusterRun> {
  checkDeadline(`cluster fan-out, ${count} node(s)`);
  // A clean registry: nothing left from the previous configuration.
  await redisCommand(redis.port, "FLUSHALL");
  const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const nodes: CometProc[] = [];
  const started = await Promise.allSettled(
    ids.map((id) =>
      spawnComet(`cluster-${count}x-${id}`, false, [
        "--redis",
        redis.url,
        "--node-id",
        id,
        "--advertise",
        "127.0.0.1",
        "--report-interval",
        "1s",
      ])
    ),
  );
  for (const s of started) if (s.status === "fulfilled") nodes.push(s.value);
  try {
    const failed = started.find((s) => s.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    if (failed) throw failed.reason;
    // Members spread evenly: node i gets M/count (the first ones take the remainder).
    const perNode = ids.map((_, i) =>
      Math.floor(CLUSTER_MEMBERS / count) + (i < CLUSTER_MEMBERS % count ? 1 : 0)
    );
    let keyStart = 0;
    for (let i = 0; i < count; i++) {
      const r = await gen.open({
        cmd: "open",
        kind: "tcp",
        port: nodes[i]!.tcp,
        count: perNode[i],
        keyPrefix: `c${count}x`,
        keyStart,
        concurrency: CONCURRENCY,
        bufSize: CLIENT_BUF,
      }, 90_000);
      keyStart += perNode[i]!;
      if (r.failed > 0) {
        log(`  ${r.failed} connections to n${i + 1} failed: ${r.errors.join("; ")}`);
      }
    }
    const live = (await gen.stats()).live as number;
    const ready = await waitRoomReady(nodes[0]!.api, redis, live, count);
    log(
      `  ${count} node(s), ${live} members (${perNode.join(" + ")}); node 1 counts ` +
        `${ready.online} online, Redis lists ${ready.roomNodes} node(s) for the room ` +
        `(after ${(ready.waitedMs / 1000).toFixed(1)} s)`,
    );
    if (ready.online < live || ready.roomNodes < count) {
      throw new Error(
        `Cluster room not populated: ${ready.online}/${live} online, ` +
          `${ready.roomNodes}/${count} nodes`,
      );
    }
    const r = await measured(
      `cluster fan-out, ${count} node(s)`,
      () => clusterFanRun(gen, nodes, redis, perNode, CLUSTER_MS),
    );
    log(
      `  ${count} node(s): ${r.deliveriesPerSec.toFixed(0)} deliveries/s, ` +
        `${r.pushesPerSec.toFixed(1)} pushes/s, lost ${r.lost}, ` +
        `p50 ${r.latency.p50} p99 ${r.latency.p99} ms, ` +
        (r.slowClosed ? `${r.slowClosed} members closed as slow consumers, ` : "") +
        `node cpu ${r.nodeCpu.map((x) => x.toFixed(2)).join("+")}, redis cpu ` +
        `${r.redisCpu.toFixed(2)}, pusher cpu ${r.pusherCpu.toFixed(2)}, ${cpuNote(r)}`,
    );
    return r;
  } finally {
    await gen.closeAll().catch(() => {});
    await Promise.all(nodes.map((n) => n.child.stop("SIGTERM")));
  }
}

/**
 * Room fan-out through Redis: one node with --redis, then three nodes on the
 * same Redis with the members spread evenly, pushes entering node 1. All the
 * processes share this machine's cores, so this measures the cost of the
 * Redis hop (publish, a second encode per node), not scale-out.
 */
async function clusterPhase(gen: LoadGens): Promise<void> {
  log(
    `comet cluster: room fan-out to ${CLUSTER_MEMBERS} TCP members, 1 node then 3 nodes ` +
      `on one Redis, pushes into node 1 for ${CLUSTER_MS} ms`,
  );
  const redis = await startRedis();
  OURS.add(redis.pid!);
  results.comet.cluster = { members: CLUSTER_MEMBERS, durationMs: CLUSTER_MS };
  try {
    results.comet.cluster.one = await clusterRun(gen, redis, 1);
    results.comet.cluster.three = await clusterRun(gen, redis, 3);
  } catch (err) {
    results.comet.cluster.error = String((err as Error).message ?? err).slice(0, 2000);
    throw err;
  } finally {
    await redis.stop();
    // Its start-up banner and shutdown lines are noise; anything else is worth seeing.
    const said = redis.log.split("\n").filter((l) =>
      l.trim() !== "" &&
      !/oO0Oo|version=|Configuration loaded|Server initialized|overcommit|SIGTERM|shutdown|exit, bye/
        .test(l)
    );
    if (said.length) log(`  redis-server said:\n${said.slice(-10).join("\n")}`);
  }
}

// ------------------------------------------------------------------- burst --

/** The room of the burst phase: live://burst. */
const BURST_ROOM = "burst";

/**
 * GET /metrics on `api`: every sample, `name{labels}` to its value; `{}`
 * when the page cannot be read.
 */
async function cometMetrics(api: number): Promise<Record<string, number>> {
  try {
    const r = await fetch(`http://127.0.0.1:${api}/metrics`, {
      signal: AbortSignal.timeout(5_000),
    });
    const text = await r.text();
    const out: Record<string, number> = {};
    for (const l of text.split("\n")) {
      const m = /^([a-z_:][a-z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/i.exec(l);
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  } catch {
    return {};
  }
}

/** What one push burst got back from the API. */
interface BurstPush {
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

/**
 * `total` room pushes of 64-byte stamped bodies into live://burst, from
 * `concurrency` keep-alive connections each sending its next push as soon as
 * the last one is answered. Nothing is retried: a refused push is counted.
 */
async function pushBurst(apiPort: number, total: number, concurrency: number): Promise<BurstPush> {
  const target = `/goim/push/room?operation=1000&type=live&room=${BURST_ROOM}`;
  const clients = await Promise.all(
    Array.from({ length: concurrency }, () => HttpClient.connect(apiPort)),
  );
  const r: BurstPush = {
    accepted: 0,
    refused429: 0,
    refused503: 0,
    otherFailed: 0,
    errors: 0,
    firstRefusal: null,
    elapsedMs: 0,
    startAt: nowMs(),
  };
  let next = 0;
  const start = performance.now();
  await Promise.all(clients.map(async (first) => {
    let c: HttpClient | undefined = first;
    while (next < total) {
      const id = next++;
      try {
        c ??= await HttpClient.connect(apiPort);
        const res = await c.post(target, pushBody(id));
        if (ok(res)) {
          r.accepted++;
          continue;
        }
        if (res.status === 429) r.refused429++;
        else if (res.status === 503) r.refused503++;
        else r.otherFailed++;
        r.firstRefusal ??= `${res.status} ${new TextDecoder().decode(res.body).slice(0, 200)}`;
      } catch (err) {
        r.errors++;
        r.firstRefusal ??= String((err as Error).message ?? err).slice(0, 200);
        c?.close();
        c = undefined;
      }
    }
    c?.close();
  }));
  r.elapsedMs = performance.now() - start;
  return r;
}

interface BurstRun extends Omit<BurstPush, "startAt" | "elapsedMs"> {
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
  latency: Record<string, number | null>;
  serverCpu: number;
  genCpu: number;
  pusherCpu: number;
  machine: { busy: number; softirq: number; system: number; steal: number };
  foreignCores: number;
  net: Record<string, number>;
  timeline: { at: number; n: number; mean: number | null; max: number | null }[];
}

/** The difference of the samples named `name` (no labels) between two /metrics reads. */
function metricDelta(a: Record<string, number>, b: Record<string, number>, name: string) {
  return name in b ? b[name]! - (a[name] ?? 0) : null;
}

/** One burst over `kind` on a fresh Comet with its default flags (per-IP limits off). */
async function burstRun(gen: LoadGens, kind: "tcp" | "ws"): Promise<BurstRun> {
  const phase = `burst-${kind}`;
  checkDeadline(`${kind} burst`);
  const comet = await spawnComet(phase, false, [], true);
  try {
    const opened = await gen.open({
      cmd: "open",
      kind,
      port: kind === "tcp" ? comet.tcp : comet.ws,
      count: BURST_MEMBERS,
      room: `live://${BURST_ROOM}`,
      keyPrefix: `burst${kind}`,
      concurrency: CONCURRENCY,
      bufSize: CLIENT_BUF,
    }, 120_000);
    if (opened.failed > 0) {
      log(`  ${opened.failed} connections failed: ${opened.errors.join("; ")}`);
    }
    await quietGate();
    const m0 = await cometMetrics(comet.api);
    await gen.reset();
    const members = (await gen.stats()).live as number;
    const measure = measureFrom([comet.child.pid], gen);
    const d0 = cpuSeconds(Deno.pid);
    const push = await pushBurst(comet.api, BURST_PUSHES, PUSHERS);
    const d1 = cpuSeconds(Deno.pid);
    const expected = push.accepted * members;
    const s = await gen.quiet(
      { idleMs: BURST_IDLE_MS, maxMs: BURST_MAX_MS, perMember: push.accepted },
      BURST_MAX_MS + 30_000,
    );
    const durationMs = Math.max(push.elapsedMs, (s.lastDeliveryAt as number) - push.startAt);
    const m = measure(durationMs);
    const m1 = await cometMetrics(comet.api);
    const caps = Object.keys(m1).filter((k) => k.startsWith("comet_pushes_refused_total{"));
    const { startAt: _s, elapsedMs: _e, ...answers } = push;
    return {
      kind,
      flags: comet.flags,
      members,
      membersAfter: s.live,
      failedToOpen: opened.failed,
      pushes: BURST_PUSHES,
      ...answers,
      expected,
      received: s.deliveries,
      lost: expected - s.deliveries,
      slowClosed: metricDelta(m0, m1, "comet_slow_closed_total"),
      refusedByCap: caps.length
        ? Object.fromEntries(
          caps.map((k) => [/kind="([^"]*)"/.exec(k)?.[1] ?? k, m1[k]! - (m0[k] ?? 0)]),
        )
        : null,
      dropped: metricDelta(m0, m1, "comet_dropped_total"),
      disconnects: s.disconnects,
      closed: s.closed,
      pushMs: push.elapsedMs,
      durationMs,
      pushesPerSec: ((BURST_PUSHES - push.errors) / push.elapsedMs) * 1000,
      acceptedPerSec: (push.accepted / push.elapsedMs) * 1000,
      deliveriesPerSec: (s.deliveries / durationMs) * 1000,
      latency: s.latency,
      serverCpu: m.cpu[0]!,
      genCpu: m.genCpu,
      pusherCpu: (d1 - d0) / (push.elapsedMs / 1000),
      machine: m.machine,
      foreignCores: m.foreignCores,
      net: m.net,
      timeline: s.timeline,
    };
  } finally {
    await gen.closeAll().catch(() => {});
    await stopComet(comet, phase);
  }
}

/**
 * Issue 17, case 1: a burst of room pushes into a large room whose members
 * all read promptly. Not measured again when disturbed: what it holds to a
 * target are counts (lost deliveries, members closed), and a disturbed run
 * only makes the test harder.
 */
async function burstPhase(gen: LoadGens): Promise<void> {
  log(
    `comet burst: ${BURST_PUSHES} room pushes from ${PUSHERS} keep-alive connections as fast ` +
      `as answered, ${BURST_MEMBERS} members (${BURST_KINDS.join(", then ")}), default flags` +
      (COMET_FLAGS.length ? ` + ${COMET_FLAGS.join(" ")}` : ""),
  );
  let failure: unknown;
  for (const kind of BURST_KINDS) {
    try {
      const r = await burstRun(gen, kind);
      results.comet[`burst_${kind}`] = r;
      const refused = r.refused429 + r.refused503 + r.otherFailed + r.errors;
      log(
        `  ${kind}: ${r.members} members; ${r.accepted} of ${r.pushes} pushes accepted` +
          (refused
            ? ` (${r.refused429} refused 429, ${r.refused503} 503, ${r.otherFailed} other, ` +
              `${r.errors} errors; first: ${r.firstRefusal})`
            : "") +
          `; ${r.received} of ${r.expected} delivered, lost ${r.lost}; ` +
          `${r.slowClosed ?? "n/a"} closed as slow (${r.disconnects} op 6 seen, ` +
          `${r.closed} connections closed); ${(r.durationMs / 1000).toFixed(2)} s to the ` +
          `last delivery, ${r.pushesPerSec.toFixed(0)} pushes/s answered in ` +
          `${r.pushMs.toFixed(0)} ms; p50 ${r.latency.p50} p99 ${r.latency.p99} ms; ` +
          `pusher cpu ${r.pusherCpu.toFixed(2)}, ${cpuNote(r)}`,
      );
    } catch (err) {
      log(`  ${kind} burst failed: ${(err as Error).message.slice(0, 500)}`);
      results.comet[`burst_${kind}`] = {
        error: String((err as Error).message ?? err).slice(0, 2000),
      };
      failure ??= err;
    }
  }
  if (failure !== undefined) throw failure;
}

// ------------------------------------------------------------------ output --

function fmtNum(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "n/a";
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

interface Row {
  figure: string;
  comet: string;
  baseline: string;
  ratio: string;
  target: string;
  met: string;
}

function buildTable(): Row[] {
  const rows: Row[] = [];
  const b = results.baseline;
  const c = results.comet;
  const kib = (x?: number) => x === undefined ? "n/a" : `${fmtNum(x / 1024, 2)} KiB`;
  const ratio = (a?: number, z?: number) =>
    a === undefined || z === undefined || !z ? undefined : a / z;
  const r2 = (x?: number) => x === undefined ? "n/a" : `${fmtNum(x, 2)}x`;
  const met = (x: number | undefined, good: (v: number) => boolean) =>
    x === undefined || !Number.isFinite(x) ? "?" : good(x) ? "yes" : "NO";
  const floor = b.memory?.perConnBytes as number | undefined;

  const mt = c.memory_tcp?.perConnBytes as number | undefined;
  rows.push({
    figure: `RSS per idle TCP conn @ ${fmtNum(c.memory_tcp?.conns ?? MEM_CONNS)}`,
    comet: kib(mt),
    baseline: kib(floor),
    ratio: r2(ratio(mt, floor)),
    target: "<= 1.2x floor",
    met: met(ratio(mt, floor), (v) => v <= 1.2),
  });
  const mw = c.memory_ws?.perConnBytes as number | undefined;
  rows.push({
    figure: `RSS per idle WS conn (standalone) @ ${fmtNum(c.memory_ws?.conns ?? MEM_CONNS)}`,
    comet: kib(mw),
    baseline: `${kib(floor)} (TCP)`,
    ratio: r2(ratio(mw, floor)),
    target: "<= 1.3x TCP floor",
    met: met(ratio(mw, floor), (v) => v <= 1.3),
  });
  const ms = c.memory_serve?.perConnBytes as number | undefined;
  rows.push({
    figure: "RSS per idle WS conn (Deno.serve)",
    comet: ms === undefined ? "n/a (handler not present)" : kib(ms),
    baseline: `${kib(floor)} (TCP)`,
    ratio: r2(ratio(ms, floor)),
    target: "(report)",
    met: "-",
  });
  const hs = c.memory_tcp?.handshakesPerSec as number | undefined;
  const hb = b.memory?.handshakesPerSec as number | undefined;
  rows.push({
    figure: `Handshakes/s, TCP connect+auth (${CONCURRENCY} in flight)`,
    comet: fmtNum(hs),
    baseline: fmtNum(hb),
    ratio: r2(ratio(hs, hb)),
    target: ">= 10,000/s",
    met: met(hs, (v) => v >= 10_000),
  });
  const hw = c.memory_ws?.handshakesPerSec as number | undefined;
  rows.push({
    figure: "Handshakes/s, WS upgrade+auth",
    comet: fmtNum(hw),
    baseline: fmtNum(hb),
    ratio: r2(ratio(hw, hb)),
    target: "(report)",
    met: "-",
  });
  const bf = (size: number) =>
    (b.fanout as any[] | undefined)?.find((r) => r.size === size)?.deliveriesPerSec as
      | number
      | undefined;
  const bm = (kind: string, size: number) =>
    (b.fanout_matched as any[] | undefined)?.find((r) => r.size === size && r.matches === kind);
  const allPairs = ["tcp", "ws"].flatMap((k) =>
    (results[`fanout_pairs_${k}`]?.pairs ?? []) as FanPair[]
  );
  const cr = (kind: string, size: number) =>
    (c[`fanout_${kind}`] as FanResult[] | undefined)?.find((r) => r.size === size);
  for (const kind of ["tcp", "ws"]) {
    const K = kind.toUpperCase();
    for (const size of SIZES) {
      const top = size === FAN;
      const run = cr(kind, size);
      const v = run?.deliveriesPerSec;
      const fpw = run?.framesPerWrite;
      const goal = kind === "tcp" ? 0.8 : 0.6;
      const note = kind === "tcp" ? "" : " (TCP)";
      rows.push({
        figure: `Fan-out deliveries/s, ${fmtNum(size)} ${K} members` +
          (fpw ? ` [${fmtNum(fpw, 1)} frames/write]` : ""),
        comet: fmtNum(v),
        baseline: `${fmtNum(bf(size))}${note} [1/write]`,
        ratio: r2(ratio(v, bf(size))),
        target: top ? `>= ${goal}x ceiling` : "(chart)",
        met: top ? met(ratio(v, bf(size)), (x) => x >= goal) : "-",
      });
      const m = bm(kind, size);
      // At the top size, alternating pairs (when run) hold the target instead.
      const pairing = results[`fanout_pairs_${kind}`] as PairsResult | undefined;
      const paired = top && pairing?.medianRatio != null;
      // The median's pairs: a disturbed pair measured again is left out here, while its lost
      // messages and closed members still count below (`allPairs`).
      const pairs = pairing?.pairs.filter((p) => !p.disturbed) ?? [];
      if (m && m.framesPerBatch !== 1) {
        rows.push({
          figure: `  same, vs ceiling at Comet's frames/write`,
          comet: fmtNum(v),
          baseline: `${fmtNum(m.deliveriesPerSec)}${note} [${m.framesPerBatch}/write]`,
          ratio: r2(ratio(v, m.deliveriesPerSec)),
          target: top ? (paired ? "(pairs below)" : `>= ${goal}x ceiling`) : "(chart)",
          met: top && !paired ? met(ratio(v, m.deliveriesPerSec), (x) => x >= goal) : "-",
        });
      }
      if (paired) {
        const median = pairing!.medianRatio as number;
        const cs = pairs.map((p) => p.comet.deliveriesPerSec);
        const bs = pairs.map((p) => p.baseline.deliveriesPerSec);
        rows.push({
          figure: `  same, Comet and plain Deno alternating, median of ${pairs.length} pairs ` +
            `[ratios ${pairs.map((p) => p.ratio.toFixed(2)).join(", ")}]`,
          comet: `${fmtNum(Math.min(...cs))}-${fmtNum(Math.max(...cs))}`,
          baseline: `${fmtNum(Math.min(...bs))}-${fmtNum(Math.max(...bs))}${note}`,
          ratio: r2(median),
          target: `>= ${goal}x ceiling`,
          met: met(median, (x) => x >= goal),
        });
      }
    }
  }
  const ub = b.fanout_unbounded as any;
  if (ub) {
    rows.push({
      figure:
        `  for context: baseline ${fmtNum(ub.size)} members with every write issued at once ` +
        `[server cpu ${fmtNum(ub.serverCpu, 2)}, p99 ${fmtNum(ub.latency.p99, 0)} ms]`,
      comet: "-",
      baseline: `${fmtNum(ub.deliveriesPerSec)} [1/write]`,
      ratio: "-",
      target: "-",
      met: "-",
    });
  }
  for (const kind of ["tcp", "ws"]) {
    const sweep = (c[`latency_sweep_${kind}`] as (FanResult & { fraction: number })[]) ?? [];
    if (sweep.length === 0) sweep.push(undefined as unknown as FanResult & { fraction: number });
    for (const l of sweep) {
      const half = !l || l.fraction === 0.5;
      const st = (b.stream as any[] | undefined)?.find((x) =>
        x.matches === kind && x.fraction === l?.fraction
      ) ?? (b.stream as any[] | undefined)?.find((x) =>
        x.fraction === 0 && l?.fraction === 0
      );
      const pct = (x: { latency: Record<string, number | null> }) =>
        `${fmtNum(x.latency.p50, 1)} / ${fmtNum(x.latency.p99, 1)} ms`;
      rows.push({
        figure: `Push->delivery p50 / p99, ${kind.toUpperCase()} ${fmtNum(FAN)}, ` +
          (!l
            ? "half of max"
            : l.fraction === 0
            ? `low fixed rate (${fmtNum(l.pushesPerSec, 1)} pushes/s)`
            : `${half ? "half" : `1/${Math.round(1 / l.fraction)}`} of max ` +
              `(${fmtNum(l.pushesPerSec, 1)} pushes/s)`),
        comet: l ? pct(l) : "n/a",
        baseline: st ? `${pct(st)}${kind === "ws" ? " (TCP)" : ""}` : "-",
        ratio: st && l?.latency.p99 && st.latency.p99
          ? r2(l.latency.p99 / st.latency.p99) + " (p99)"
          : "-",
        target: half ? "p99 <= 50 ms" : "(report)",
        met: half ? met(l?.latency.p99 ?? undefined, (v) => v <= 50) : "-",
      });
    }
  }
  // Baseline-only runs: the runtime's latency at fixed rates, with no Comet figure to match.
  for (const st of ((b.stream as any[] | undefined) ?? []).filter((x) => x.matches === "fixed")) {
    rows.push({
      figure: `Push->delivery p50 / p99, baseline TCP ${fmtNum(st.size)}, ` +
        `${fmtNum(st.rate, 1)} pushes/s [max ${fmtNum(st.latency.max, 0)} ms]`,
      comet: "n/a",
      baseline: `${fmtNum(st.latency.p50, 1)} / ${fmtNum(st.latency.p99, 1)} ms`,
      ratio: "-",
      target: "(report)",
      met: "-",
    });
  }
  const pk = c.push_keys;
  rows.push({
    figure: `Single-key API pushes/s (${KEY_WORKERS} keep-alive conns)`,
    comet: fmtNum(pk?.perSec),
    baseline: "-",
    ratio: "-",
    target: ">= 15,000/s",
    met: met(pk?.perSec, (v) => v >= 15_000),
  });
  const steady = ["tcp", "ws"].flatMap((k) => (c[`latency_sweep_${k}`] as FanResult[]) ?? [])
    .filter((x) => x !== undefined).reduce((n, x) => n + Math.max(0, x!.lost), 0) +
    Math.max(0, pk?.lost ?? 0);
  const haveSteady = c.latency_tcp || c.latency_ws || pk;
  rows.push({
    figure: "Messages lost at steady state (paced runs + key pushes)",
    comet: haveSteady ? fmtNum(steady) : "n/a",
    baseline: "-",
    ratio: "-",
    target: "0",
    met: haveSteady ? (steady === 0 ? "yes" : "NO") : "?",
  });
  const sat = ["tcp", "ws"].flatMap((k) => (c[`fanout_${k}`] as FanResult[] | undefined) ?? [])
    .concat(allPairs.map((p) => p.comet))
    .reduce((n, x) => n + Math.max(0, x.lost), 0);
  const satBase = ((b.fanout as any[] | undefined) ?? [])
    .concat(allPairs.map((p) => p.baseline))
    .reduce((n, x) => n + Math.max(0, x.lost), 0);
  const slow = ["tcp", "ws"].flatMap((k) => [
    ...((c[`fanout_${k}`] as FanResult[] | undefined) ?? []),
    ...((c[`latency_sweep_${k}`] as FanResult[] | undefined) ?? []),
  ]).concat(allPairs.map((p) => p.comet)).reduce((n, x) => n + (x.slowClosed ?? 0), 0);
  rows.push({
    figure: `Members closed as slow consumers (queue ${QUEUE}), all runs`,
    comet: fmtNum(slow),
    baseline: "-",
    ratio: "-",
    target: "(report)",
    met: "-",
  });
  rows.push({
    figure: "Messages lost in saturation runs",
    comet: fmtNum(sat),
    baseline: fmtNum(satBase),
    ratio: "-",
    target: "(report)",
    met: "-",
  });
  for (const kind of BURST_KINDS) {
    const r = c[`burst_${kind}`] as (BurstRun & { error?: string }) | undefined;
    const head = `Room burst, ${fmtNum(r?.members ?? BURST_MEMBERS)} ${kind.toUpperCase()} ` +
      `members, ${fmtNum(BURST_PUSHES)} pushes (${PUSHERS} conns, default flags` +
      (COMET_FLAGS.length ? ` + ${COMET_FLAGS.join(" ")})` : ")");
    if (!r || r.error !== undefined) {
      rows.push({
        figure: `${head}: deliveries lost`,
        comet: r ? "error" : "n/a",
        baseline: "-",
        ratio: "-",
        target: "0",
        met: "?",
      });
      continue;
    }
    rows.push({
      figure: `${head}: deliveries lost (accepted pushes x members)`,
      comet: `${fmtNum(Math.max(0, r.lost))} of ${fmtNum(r.expected)}`,
      baseline: "-",
      ratio: "-",
      target: "0",
      met: r.lost <= 0 ? "yes" : "NO",
    });
    const slow = r.slowClosed ?? r.disconnects;
    rows.push({
      figure: "  same, members closed as slow (/metrics) / op 6 seen by members",
      comet: `${r.slowClosed === null ? "n/a" : fmtNum(r.slowClosed)} / ${fmtNum(r.disconnects)}`,
      baseline: "-",
      ratio: "-",
      target: "0",
      met: slow === 0 && r.disconnects === 0 ? "yes" : "NO",
    });
    rows.push({
      figure: `  same, pushes accepted / refused 429 / 503 / failed otherwise ` +
        `[API ${fmtNum(r.pushesPerSec)} pushes/s, ${fmtNum(r.durationMs / 1000, 2)} s to the ` +
        `last delivery]`,
      comet: `${fmtNum(r.accepted)} / ${fmtNum(r.refused429)} / ${fmtNum(r.refused503)} / ` +
        fmtNum(r.otherFailed + r.errors),
      baseline: "-",
      ratio: "-",
      target: "(report)",
      met: "-",
    });
  }
  const cl = c.cluster as { members: number; one?: ClusterRun; three?: ClusterRun } | undefined;
  if (cl) {
    const one = cl.one, three = cl.three;
    const M = fmtNum(cl.members);
    const pct = (x?: ClusterRun) =>
      x ? `${fmtNum(x.latency.p50, 1)} / ${fmtNum(x.latency.p99, 1)} ms` : "n/a";
    rows.push({
      figure: `Cluster fan-out deliveries/s, 1 node (--redis), ${M} TCP members`,
      comet: fmtNum(one?.deliveriesPerSec),
      baseline: "-",
      ratio: "-",
      target: "(report)",
      met: "-",
    });
    rows.push({
      figure: `Cluster fan-out deliveries/s, 3 nodes, ${M} members ` +
        `[3 nodes + Redis on ${navigator.hardwareConcurrency} shared cores: ` +
        `Redis-hop cost, not scale-out]`,
      comet: fmtNum(three?.deliveriesPerSec),
      baseline: `${fmtNum(one?.deliveriesPerSec)} (1 node)`,
      ratio: r2(ratio(three?.deliveriesPerSec, one?.deliveriesPerSec)),
      target: "(report)",
      met: "-",
    });
    rows.push({
      figure: `Cluster fan-out push->delivery p50 / p99, 3 nodes vs 1 node, ${M} members`,
      comet: pct(three),
      baseline: `${pct(one)} (1 node)`,
      ratio: three?.latency.p99 && one?.latency.p99
        ? r2(three.latency.p99 / one.latency.p99) + " (p99)"
        : "-",
      target: "(report)",
      met: "-",
    });
    const lost = (x?: ClusterRun) =>
      x ? `${fmtNum(Math.max(0, x.lost))} of ${fmtNum(x.expected)}` : "n/a";
    rows.push({
      figure: "Messages lost in cluster fan-out (accepted pushes x members), 3 nodes vs 1 node",
      comet: lost(three),
      baseline: `${lost(one)} (1 node)`,
      ratio: "-",
      target: "0",
      met: one && three ? (one.lost <= 0 && three.lost <= 0 ? "yes" : "NO") : "?",
    });
  }
  return rows;
}

function printTable(rows: Row[]): string {
  const head: Row = {
    figure: "figure",
    comet: "Comet",
    baseline: "baseline",
    ratio: "ratio",
    target: "target",
    met: "met?",
  };
  const keys = Object.keys(head) as (keyof Row)[];
  const w = keys.map((k) => Math.max(...[head, ...rows].map((r) => r[k].length)));
  const line = (r: Row) => "| " + keys.map((k, i) => r[k].padEnd(w[i]!)).join(" | ") + " |";
  const sep = "|" + w.map((n) => "-".repeat(n + 2)).join("|") + "|";
  return [line(head), sep, ...rows.map(line)].join("\n");
}

function microTable(): string {
  if (!results.micro) return "";
  const fmt = (ns: number) =>
    ns >= 1e6
      ? `${(ns / 1e6).toFixed(2)} ms`
      : ns >= 1e3
      ? `${(ns / 1e3).toFixed(1)} us`
      : `${ns.toFixed(1)} ns`;
  const lines = ["Micro benchmarks (deno bench, time per iteration):"];
  for (const m of results.micro) {
    lines.push(
      `  ${m.name.padEnd(66)} avg ${fmt(m.avg).padStart(10)}  p75 ${fmt(m.p75).padStart(10)}` +
        `  p99 ${fmt(m.p99).padStart(10)}`,
    );
  }
  return lines.join("\n");
}

/** A hand-written SVG line chart: deliveries/s against room size (log x). */
function chart(): string {
  const series: { name: string; color: string; pts: [number, number][] }[] = [];
  const pick = (runs: any[] | undefined) =>
    (runs ?? []).map((r) => [r.size, r.deliveriesPerSec] as [number, number]);
  if (results.baseline.fanout) {
    series.push({
      name: "plain Deno TCP, 1 frame per write",
      color: "#666",
      pts: pick(results.baseline.fanout),
    });
  }
  const matched = (results.baseline.fanout_matched as any[] | undefined)?.filter((r) =>
    r.matches === "tcp"
  );
  if (matched?.length) {
    series.push({
      name: "plain Deno TCP, Comet TCP's frames per write",
      color: "#bbb",
      pts: pick(matched),
    });
  }
  if (results.comet.fanout_tcp) {
    series.push({ name: "Comet TCP", color: "#1f77b4", pts: pick(results.comet.fanout_tcp) });
  }
  if (results.comet.fanout_ws) {
    series.push({ name: "Comet WebSocket", color: "#d62728", pts: pick(results.comet.fanout_ws) });
  }
  const W = 720, H = 420, L = 90, R = 30, T = 40, B = 60;
  const all = series.flatMap((s) => s.pts);
  const xs = all.map((p) => p[0]);
  const xmin = Math.log10(Math.min(...xs, 100)), xmax = Math.log10(Math.max(...xs, 10_000));
  const ymaxRaw = Math.max(...all.map((p) => p[1]), 1);
  const step = 10 ** Math.floor(Math.log10(ymaxRaw));
  const ymax = Math.ceil(ymaxRaw / step) * step;
  const X = (x: number) => L + ((Math.log10(x) - xmin) / (xmax - xmin || 1)) * (W - L - R);
  const Y = (y: number) => H - B - (y / ymax) * (H - T - B);
  const el: string[] = [];
  el.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  el.push(
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">` +
      `Room fan-out: deliveries per second against room size (64-byte bodies, 2 cores)</text>`,
  );
  for (let i = 0; i <= 5; i++) {
    const y = (ymax * i) / 5;
    el.push(`<line x1="${L}" x2="${W - R}" y1="${Y(y)}" y2="${Y(y)}" stroke="#eee"/>`);
    el.push(
      `<text x="${L - 8}" y="${Y(y) + 4}" text-anchor="end" font-size="11">${fmtNum(y)}</text>`,
    );
  }
  for (const x of [...new Set([100, 1_000, 5_000, 10_000, ...xs])].sort((a, b) => a - b)) {
    el.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`);
    el.push(
      `<text x="${X(x)}" y="${H - B + 16}" text-anchor="middle" font-size="11">${fmtNum(x)}</text>`,
    );
  }
  el.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/>`);
  el.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>`);
  el.push(
    `<text x="${(L + W - R) / 2}" y="${H - 18}" text-anchor="middle" font-size="12">` +
      `room members (log scale)</text>`,
  );
  el.push(
    `<text x="18" y="${(T + H - B) / 2}" text-anchor="middle" font-size="12" ` +
      `transform="rotate(-90 18 ${(T + H - B) / 2})">deliveries / s</text>`,
  );
  series.forEach((s, i) => {
    const pts = s.pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ");
    el.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const [x, y] of s.pts) {
      el.push(
        `<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3.5" fill="${s.color}"/>`,
      );
    }
    el.push(
      `<rect x="${L + 12}" y="${T + 8 + i * 18}" width="14" height="3" fill="${s.color}"/>` +
        `<text x="${L + 32}" y="${T + 13 + i * 18}" font-size="12">${s.name}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
    `viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n${el.join("\n")}\n</svg>\n`;
}

// -------------------------------------------------------------------- main --

results.source = await sourceState();
monitor.start();
{
  const load = await waitQuiet();
  results.contention = { atStartCores: load };
  log(`other programs on this machine at start: ${load.toFixed(2)} cores`);
}
if (!argv.has("no-micro")) await micro();
const gen = new LoadGens(GENS);
try {
  await gen.stats();
  if (PHASES.has("baseline") || PHASES.has("baseline-mem")) await baselineMemPhase(gen);
  if (PHASES.has("mem-tcp")) await memPhase(gen, "tcp", "mem-tcp");
  if (PHASES.has("mem-ws")) await memPhase(gen, "ws", "mem-ws");
  if (PHASES.has("mem-serve")) await memServePhase(gen);
  if (PHASES.has("fanout-tcp")) await fanPhase(gen, "tcp", "fanout-tcp");
  if (PHASES.has("fanout-ws")) await fanPhase(gen, "ws", "fanout-ws");
  if (PHASES.has("baseline") || PHASES.has("baseline-fan")) await baselineFanPhase(gen);
  if (PHASES.has("fanout-pairs")) await pairedFanPhase(gen);
  if (BURST_KINDS.length) await burstPhase(gen);
  if (PHASES.has("cluster")) await clusterPhase(gen);
} catch (err) {
  log(`run aborted: ${(err as Error).stack ?? err}`);
  results.error = String((err as Error).message ?? err);
} finally {
  await gen.stop();
}

monitor.stop();
results.contention.wholeRunCores = monitor.since({ foreign: 0, elapsed: 0 });
const rows = buildTable();
results.table = rows;
results.elapsedSec = (performance.now() - T0) / 1000;
Deno.writeTextFileSync(new URL("results.json", OUT), JSON.stringify(results, null, 2) + "\n");
if (results.baseline.fanout || results.comet.fanout_tcp) {
  Deno.writeTextFileSync(new URL("fanout.svg", OUT), chart());
}
const foreignRuns = JSON.stringify(results).match(/"foreignCores":[0-9.e-]+/g) ?? [];
const worstForeign = Math.max(0, ...foreignRuns.map((x) => Number(x.split(":")[1])));
results.contention.worstRunCores = worstForeign;
const stealRuns = (JSON.stringify(results).match(/"steal":[0-9.e-]+/g) ?? [])
  .map((x) => stealCores({ steal: Number(x.split(":")[1]) }));
const worstSteal = Math.max(0, ...stealRuns);
results.contention.worstRunStealCores = worstSteal;
Deno.writeTextFileSync(new URL("results.json", OUT), JSON.stringify(results, null, 2) + "\n");
const micros = microTable();
if (micros) console.log(micros + "\n");
console.log(printTable(rows));
console.log(
  `\n${results.machine.nproc} cores, ${(results.machine.memTotalKiB / 1048576).toFixed(1)} GiB, ` +
    `Deno ${Deno.version.deno}; ${results.elapsedSec.toFixed(0)} s. ` +
    `Wrote bench/out/results.json and bench/out/fanout.svg.`,
);
console.log(
  `Source: commit ${results.source.commit}` +
    (results.source.dirtyFiles
      ? ` with ${results.source.dirtyFiles} uncommitted files in src/`
      : "") +
    (results.settings.cometLimitFlags?.length
      ? `; Comet run with ${results.settings.cometLimitFlags.join(" ")}`
      : "") +
    (BURST_KINDS.some((k) => results.comet[`burst_${k}`]?.flags)
      ? ` (the burst phase with only ${
        BURST_KINDS.map((k) => results.comet[`burst_${k}`]?.flags).find((f) => f).join(" ")
      })`
      : "") +
    (SERVER_V8_FLAGS.length ? `; every server with V8 flags ${SERVER_V8_FLAGS.join(",")}` : ""),
);
console.log(
  `Other programs' CPU during the run: ${results.contention.wholeRunCores.toFixed(2)} cores on ` +
    `average, ${worstForeign.toFixed(2)} in the worst measured run; hypervisor steal ` +
    `${worstSteal.toFixed(2)} cores in the worst run` +
    (Math.max(worstForeign, worstSteal) > 0.15
      ? " -- figures are contaminated; rerun on a quiet machine."
      : "."),
);
if (results.error) Deno.exit(1);
