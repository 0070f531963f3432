// The final table's rows of the workers phase: `--workers N` against
// `--workers 1` (and memory against the plain-Deno floor).
import type { CpuWhere, FanResult, Results, Row, WorkersPair, WorkersSide } from "./records.ts";
import { fmtNum } from "./table.ts";

/** "a-b" over `xs`, formatted with `digits` decimals. */
function _range(xs: number[], digits = 0): string {
  return xs.length === 0
    ? "n/a"
    : `${fmtNum(Math.min(...xs), digits)}-${fmtNum(Math.max(...xs), digits)}`;
}

/** The mean of each CPU figure over `cs`. */
function _meanCpu(cs: CpuWhere[]): CpuWhere | undefined {
  if (cs.length === 0) return undefined;
  const out = { ...cs[0]! };
  for (const k of Object.keys(out) as (keyof CpuWhere)[]) {
    out[k] = cs.reduce((n, c) => n + c[k], 0) / cs.length;
  }
  return out;
}

/** "server 1.20, gens 0.50, system 0.30, softirq 0.10, steal 0.00, idle 0.05". */
function _cpuCell(c: CpuWhere | undefined): string {
  if (!c) return "n/a";
  return `server ${fmtNum(c.server, 2)}, gens ${fmtNum(c.gens, 2)}, sys ${fmtNum(c.system, 2)}, ` +
    `softirq ${fmtNum(c.softirq, 2)}, steal ${fmtNum(c.steal, 2)}, idle ${fmtNum(c.idle, 2)}`;
}

/**
 * The targets issue 19 sets for `n` workers: on 2 cores (2 workers) the
 * ratios against one worker; on the 16-core device run (8 workers, the
 * generators on the other 8) a fan-out ratio and a p99 in ms. Other counts
 * have none: their figures are reported.
 */
function _targets(
  n: number,
): { fan: number | null; p99Ratio: number | null; p99Ms: number | null } {
  if (n <= 2) return { fan: 1.3, p99Ratio: 0.65, p99Ms: null };
  if (n >= 8) return { fan: 6, p99Ratio: null, p99Ms: 50 };
  return { fan: null, p99Ratio: null, p99Ms: null };
}

/**
 * The workers phase's rows, none when it did not run: latency, fan-out,
 * where the CPU went, memory against the plain-Deno floor, connect rate,
 * members per worker and messages lost.
 */
export function workersRows(results: Results): Row[] {
  const w = results.workers;
  if (w === undefined) return [];
  const rows: Row[] = [];
  const met = (x: number | null | undefined, good: (v: number) => boolean) =>
    x === null || x === undefined || !Number.isFinite(x) ? "?" : good(x) ? "yes" : "NO";
  const r2 = (x: number | null | undefined) =>
    x === null || x === undefined ? "n/a" : `${fmtNum(x, 2)}x`;
  if (!("pairs" in w)) {
    rows.push({
      figure: "Workers phase (--workers N against 1)",
      comet: "error" in w ? "error" : `skipped (${w.skipped})`,
      baseline: "-",
      ratio: "-",
      target: "-",
      met: "error" in w ? "?" : "-",
    });
    return rows;
  }
  const N = w.workers;
  const pairs: WorkersPair[] = w.pairs.filter((p) => !p.disturbed);
  const many = pairs.map((p) => p.many), one = pairs.map((p) => p.one);
  const pn = `${pairs.length} pair${pairs.length === 1 ? "" : "s"}`;
  const ratios = (f: (p: WorkersPair) => number | null) =>
    pairs.map((p) => f(p)?.toFixed(2) ?? "n/a").join(", ");
  const lat = (sides: WorkersSide[]) =>
    `${_range(sides.map((x) => x.latency.latency.p50 ?? NaN), 1)} / ` +
    `${_range(sides.map((x) => x.latency.latency.p99 ?? NaN), 1)} ms`;
  // A side that lost deliveries measured only the members its pushes reached:
  // no ratio of such runs holds a target.
  const partial = (f: (x: WorkersSide) => FanResult) =>
    pairs.some((p) => f(p.one).lost > 0 || f(p.many).lost > 0);
  const latPartial = partial((x) => x.latency), fanPartial = partial((x) => x.fan);
  const LOST = " [deliveries lost: not every member reached]";
  const goal = _targets(N);
  const p99Many = w.medianP99Many ?? null;
  rows.push({
    figure: `Workers: push->delivery p50 / p99, TCP ${fmtNum(w.members)}, ` +
      `${fmtNum(w.rate)} pushes/s, --workers ${N} vs 1, median of ${pn} ` +
      `[p99 ratios ${ratios((p) => p.p99Ratio)}` +
      (p99Many === null ? "" : `; median p99 ${fmtNum(p99Many, 1)} ms`) + `]` +
      (latPartial ? LOST : ""),
    comet: lat(many),
    baseline: `${lat(one)} (1 worker)`,
    ratio: `${r2(w.medianP99Ratio)} (p99)`,
    target: goal.p99Ratio !== null
      ? `<= ${goal.p99Ratio}x (p99)`
      : goal.p99Ms !== null
      ? `p99 < ${goal.p99Ms} ms`
      : "(report)",
    met: latPartial
      ? "?"
      : goal.p99Ratio !== null
      ? met(w.medianP99Ratio, (v) => v <= goal.p99Ratio!)
      : goal.p99Ms !== null
      ? met(p99Many, (v) => v < goal.p99Ms!)
      : "-",
  });
  rows.push({
    figure: `Workers: fan-out deliveries/s, ${fmtNum(w.members)} TCP members, ` +
      `--workers ${N} vs 1, median of ${pn} [ratios ${ratios((p) => p.fanRatio)}]` +
      (fanPartial ? LOST : ""),
    comet: _range(many.map((x) => x.fan.deliveriesPerSec)),
    baseline: `${_range(one.map((x) => x.fan.deliveriesPerSec))} (1 worker)`,
    ratio: r2(w.medianFanRatio),
    target: goal.fan !== null ? `>= ${goal.fan}x` : "(report)",
    met: fanPartial ? "?" : goal.fan !== null ? met(w.medianFanRatio, (v) => v >= goal.fan!) : "-",
  });
  rows.push({
    figure: `  same, where the CPU went (cores, mean of the saturation runs on ` +
      `${results.machine.nproc} cores)`,
    comet: _cpuCell(_meanCpu(many.map((x) => x.fanCpu))),
    baseline: `${_cpuCell(_meanCpu(one.map((x) => x.fanCpu)))} (1 worker)`,
    ratio: "-",
    target: "(report)",
    met: "-",
  });
  const split = many.map((x) => x.membersPerWorker).find((m) => m !== null);
  if (split) {
    rows.push({
      figure: `  same, members per worker (first kept pair)`,
      comet: split.map((n) => fmtNum(n)).join(" / "),
      baseline: "-",
      ratio: "-",
      target: "(report)",
      met: "-",
    });
  }
  const floor = results.baseline.memory?.perConnBytes;
  const memRatio = floor && w.medianMemMany !== null ? w.medianMemMany / floor : null;
  const kib = (x: number | null | undefined) =>
    x === null || x === undefined ? "n/a" : `${fmtNum(x / 1024, 2)} KiB`;
  rows.push({
    figure: `Workers: RSS per idle TCP conn @ ${fmtNum(w.memConns)}, --workers ${N} ` +
      `[--workers 1: ${kib(w.medianMemOne)}]`,
    comet: kib(w.medianMemMany),
    baseline: floor === undefined ? "n/a (run baseline-mem)" : kib(floor),
    ratio: r2(memRatio),
    target: "<= 1.2x floor",
    met: met(memRatio, (v) => v <= 1.2),
  });
  rows.push({
    figure: `Workers: handshakes/s, TCP connect+auth, --workers ${N} vs 1 ` +
      `[ratios ${ratios((p) => p.handshakeRatio)}]`,
    comet: _range(many.map((x) => x.memory.handshakesPerSec)),
    baseline: `${_range(one.map((x) => x.memory.handshakesPerSec))} (1 worker)`,
    ratio: r2(w.medianHandshakeRatio),
    target: "(report)",
    met: "-",
  });
  // Every pair counts here, a disturbed one too: a message lost is lost.
  const lost = (sides: WorkersSide[]) => sides.reduce((n, x) => n + Math.max(0, x.latency.lost), 0);
  const lostMany = lost(w.pairs.map((p) => p.many)), lostOne = lost(w.pairs.map((p) => p.one));
  rows.push({
    figure: `Workers: messages lost at ${fmtNum(w.rate)} pushes/s, --workers ${N} vs 1, all pairs`,
    comet: fmtNum(lostMany),
    baseline: `${fmtNum(lostOne)} (1 worker)`,
    ratio: "-",
    target: "0",
    met: w.pairs.length ? (lostMany === 0 && lostOne === 0 ? "yes" : "NO") : "?",
  });
  return rows;
}
