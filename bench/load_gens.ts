// The load generators: several bench/loadgen.ts processes that share every
// phase's connections and whose figures are merged as if they were one.
import { cpuSeconds, Histogram, nowMs } from "./_common.ts";
import { Child, rootPath, RUN } from "./child.ts";
import type {
  GenCounters,
  GenDetail,
  Latency,
  LoadgenProtocol,
  OpenArgs,
  OpenReply,
} from "./messages.ts";
import { CONCURRENCY } from "./settings.ts";

/** Most connections one load generator holds (its open-files limit is ~20,000). */
const MAX_PER_GEN = 19_000;
/** Absolute-time windows of the merged timeline. */
const WINDOW_MS = 500;

/** Spread of per-connection mean latency in ms over the connections that got any. */
export interface PerConnSpread {
  conns: number;
  min: number;
  p25: number;
  p50: number;
  p75: number;
  p99: number;
  max: number;
}

/** One window of the merged timeline: deliveries sent in it, their mean and max latency. */
export interface TimelineWindow {
  /** Seconds from the first window. */
  at: number;
  n: number;
  mean: number | null;
  max: number | null;
}

/** One generator's share of a run, as {@linkcode GenFigures.perGen} lists it. */
export interface GenShare {
  live: number;
  deliveries: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

/** The generators' counters together. */
export type GenTotals = Omit<GenCounters, "firstDeliveryAt" | "lastDeliveryAt"> & {
  firstDeliveryAt: number;
  lastDeliveryAt: number;
};

/** The generators' figures together, latency included. */
export interface GenFigures extends GenTotals {
  latency: Latency;
  perConnMeanLatency: PerConnSpread | null;
  timeline: TimelineWindow[];
  perGen: GenShare[];
}

/** What {@linkcode LoadGens.open} did on every generator together. */
export type OpenTotals = OpenReply;

/** The counters that add up across generators. */
const _SUMMED = [
  "deliveries",
  "disconnects",
  "wsCloses",
  "otherOps",
  "reads",
  "bytes",
  "closed",
  "errors",
  "live",
] as const;

/**
 * The load generators: GENS child processes of bench/loadgen.ts that share
 * every phase's connections evenly and whose figures are merged as if they
 * were one (sums of counters, merged histogram bins and per-connection
 * means, timeline windows by absolute send time). One Deno process reading
 * 10k sockets schedules its reads unfairly: some connections are read
 * seconds late, which the measured latency tail would wrongly charge to the
 * server.
 */
export class LoadGens {
  /** The generator processes. */
  readonly gens: Child<LoadgenProtocol>[];
  /** Live connections per generator after the last call that reported them. */
  #live: number[];

  /** `count` generators, each under `taskset -c cpus` when `cpus` is a CPU list. */
  constructor(count: number, cpus = "") {
    this.gens = Array.from(
      { length: count },
      (_, i) =>
        new Child<LoadgenProtocol>(
          `loadgen${i + 1}`,
          [...RUN, rootPath("bench/loadgen.ts")],
          cpus,
        ),
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
  async open(spec: OpenArgs, timeout = 90_000): Promise<OpenTotals> {
    await this.stats();
    const count = spec.count;
    const shares = this.#split(count);
    shares.forEach((n, i) => {
      if (this.#live[i]! + n > MAX_PER_GEN) {
        throw new Error(
          `loadgen${i + 1} would hold ${this.#live[i]! + n} connections (> ${MAX_PER_GEN}): ` +
            `run with more --gens`,
        );
      }
    });
    const concurrency = spec.concurrency ?? CONCURRENCY;
    let keyStart = spec.keyStart ?? 0;
    const calls = this.gens.map((g, i) => {
      const n = shares[i]!;
      const at = keyStart;
      keyStart += n;
      if (n === 0) return Promise.resolve(null);
      return g.call("open", {
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
    const rs = await Promise.all(this.gens.map((g) => g.call("reset", { t0 })));
    this.#live = rs.map((r) => r.live);
  }

  /** Merged counters (live, deliveries, ...) without latency details. */
  async stats(): Promise<GenTotals> {
    return this.#totals(
      await Promise.all(this.gens.map((g) => g.call("stats", { detail: false }))),
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
  ): Promise<GenFigures> {
    const all = this.#live.reduce((a, b) => a + b, 0);
    const rs = await Promise.all(this.gens.map((g, i) => {
      const expect = o.perMember !== undefined
        ? o.perMember * this.#live[i]!
        : o.total !== undefined
        ? Math.ceil((o.total * this.#live[i]!) / Math.max(1, all))
        : undefined;
      return g.call("quiet", { idleMs: o.idleMs, maxMs: o.maxMs, expect }, timeout);
    }));
    return this.#figures(rs);
  }

  /** Closes every generator's connections. */
  async closeAll(): Promise<void> {
    await Promise.all(this.gens.map((g) => g.call("close_all", {})));
    this.#live = this.gens.map(() => 0);
  }

  /** Asks every generator to exit, and stops those that do not. */
  async stop(): Promise<void> {
    await Promise.all(this.gens.map(async (g) => {
      await g.call("exit", {}, 5_000).catch(() => {});
      await g.stop("SIGTERM", 3_000);
    }));
  }

  /** The generators' counters summed, in the shape one generator used to give. */
  #totals(rs: GenCounters[]): GenTotals {
    this.#live = rs.map((r) => r.live);
    const out = {} as GenTotals;
    for (const k of _SUMMED) out[k] = rs.reduce((n, r) => n + r[k], 0);
    const firsts = rs.map((r) => r.firstDeliveryAt).filter((t) => t > 0);
    out.firstDeliveryAt = firsts.length ? Math.min(...firsts) : 0;
    out.lastDeliveryAt = Math.max(0, ...rs.map((r) => r.lastDeliveryAt));
    return out;
  }

  /** One figure set from the generators' snapshots, latency merged from their bins. */
  #figures(rs: GenDetail[]): GenFigures {
    const out = this.#totals(rs);
    const h = new Histogram();
    for (const r of rs) h.merge(r.hist);
    // Bin edges are multiples of 0.05 ms: rounding only drops float noise.
    const q = (f: number) => {
      const v = h.quantile(f);
      return v === null ? null : Math.round(v * 100) / 100;
    };
    const latency: Latency = {
      count: h.count,
      p50: q(0.5),
      p99: q(0.99),
      max: h.count ? h.max : null,
      mean: h.count ? h.sum / h.count : null,
    };
    const perGen = rs.map((r) => ({
      live: r.live,
      deliveries: r.deliveries,
      p50: r.latency.p50,
      p99: r.latency.p99,
      max: r.latency.max,
    }));
    return {
      ...out,
      latency,
      perConnMeanLatency: _perConnSpread(rs.flatMap((r) => r.perConnMeans)),
      timeline: _mergeTimeline(rs),
      perGen,
    };
  }
}

/** Spread of per-connection mean latency: min, quartiles, max over connections that got any. */
function _perConnSpread(means: number[]): PerConnSpread | null {
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
function _mergeTimeline(rs: GenDetail[]): TimelineWindow[] {
  const fine: { at: number; n: number; sum: number; max: number }[] = [];
  for (const r of rs) {
    const w = r.windows;
    for (let j = 0; j + 3 < w.length; j += 4) {
      fine.push({
        at: r.timelineStart + w[j]! * r.fineWindowMs,
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
