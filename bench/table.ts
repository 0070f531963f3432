// The final table: every figure against its target, from a run's results.
import type {
  BaselineFanRun,
  BaselineStream,
  BurstRun,
  ClusterRun,
  FanPair,
  FanResult,
  LatencyRun,
  Results,
  Row,
} from "./records.ts";
import type { Latency } from "./messages.ts";
import { CONCURRENCY, KEY_WORKERS, QUEUE, type Settings } from "./settings.ts";

const _KINDS = ["tcp", "ws"] as const;
type _Kind = typeof _KINDS[number];

/** `n` with thousands separators and `digits` decimals; "n/a" when not a number. */
export function fmtNum(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "n/a";
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

/**
 * The table's rows: every figure the run measured, its baseline, their ratio
 * and the target it is held to.
 */
export function buildTable(results: Results, s: Settings): Row[] {
  const rows: Row[] = [];
  const b = results.baseline;
  const c = results.comet;
  const kib = (x?: number) => x === undefined ? "n/a" : `${fmtNum(x / 1024, 2)} KiB`;
  const ratio = (a?: number, z?: number) =>
    a === undefined || z === undefined || !z ? undefined : a / z;
  const r2 = (x?: number) => x === undefined ? "n/a" : `${fmtNum(x, 2)}x`;
  const met = (x: number | undefined, good: (v: number) => boolean) =>
    x === undefined || !Number.isFinite(x) ? "?" : good(x) ? "yes" : "NO";
  const floor = b.memory?.perConnBytes;

  const mt = c.memory_tcp?.perConnBytes;
  rows.push({
    figure: `RSS per idle TCP conn @ ${fmtNum(c.memory_tcp?.conns ?? s.memConns)}`,
    comet: kib(mt),
    baseline: kib(floor),
    ratio: r2(ratio(mt, floor)),
    target: "<= 1.2x floor",
    met: met(ratio(mt, floor), (v) => v <= 1.2),
  });
  const mw = c.memory_ws?.perConnBytes;
  rows.push({
    figure: `RSS per idle WS conn (standalone) @ ${fmtNum(c.memory_ws?.conns ?? s.memConns)}`,
    comet: kib(mw),
    baseline: `${kib(floor)} (TCP)`,
    ratio: r2(ratio(mw, floor)),
    target: "<= 1.3x TCP floor",
    met: met(ratio(mw, floor), (v) => v <= 1.3),
  });
  const serve = c.memory_serve;
  const ms = serve !== undefined && "perConnBytes" in serve ? serve.perConnBytes : undefined;
  rows.push({
    figure: "RSS per idle WS conn (Deno.serve)",
    comet: ms === undefined ? "n/a (handler not present)" : kib(ms),
    baseline: `${kib(floor)} (TCP)`,
    ratio: r2(ratio(ms, floor)),
    target: "(report)",
    met: "-",
  });
  const hs = c.memory_tcp?.handshakesPerSec;
  const hb = b.memory?.handshakesPerSec;
  rows.push({
    figure: `Handshakes/s, TCP connect+auth (${CONCURRENCY} in flight)`,
    comet: fmtNum(hs),
    baseline: fmtNum(hb),
    ratio: r2(ratio(hs, hb)),
    target: ">= 10,000/s",
    met: met(hs, (v) => v >= 10_000),
  });
  const hw = c.memory_ws?.handshakesPerSec;
  rows.push({
    figure: "Handshakes/s, WS upgrade+auth",
    comet: fmtNum(hw),
    baseline: fmtNum(hb),
    ratio: r2(ratio(hw, hb)),
    target: "(report)",
    met: "-",
  });
  const bf = (size: number) => b.fanout?.find((r) => r.size === size)?.deliveriesPerSec;
  const bm = (kind: string, size: number) =>
    b.fanout_matched?.find((r) => r.size === size && r.matches === kind);
  const allPairs: FanPair[] = _KINDS.flatMap((k) => results[`fanout_pairs_${k}`]?.pairs ?? []);
  const cr = (kind: _Kind, size: number) => c[`fanout_${kind}`]?.find((r) => r.size === size);
  for (const kind of _KINDS) {
    const K = kind.toUpperCase();
    for (const size of s.sizes) {
      const top = size === s.fan;
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
      const pairing = results[`fanout_pairs_${kind}`];
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
        const median = pairing!.medianRatio!;
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
  const ub = b.fanout_unbounded;
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
  for (const kind of _KINDS) {
    // No sweep still gets its row, with no figures.
    const sweep: (LatencyRun | undefined)[] = [...(c[`latency_sweep_${kind}`] ?? [])];
    if (sweep.length === 0) sweep.push(undefined);
    for (const l of sweep) {
      const half = !l || l.fraction === 0.5;
      const st: BaselineStream | undefined = b.stream?.find((x) =>
        x.matches === kind && x.fraction === l?.fraction
      ) ?? b.stream?.find((x) => x.fraction === 0 && l?.fraction === 0);
      const pct = (x: { latency: Latency }) =>
        `${fmtNum(x.latency.p50, 1)} / ${fmtNum(x.latency.p99, 1)} ms`;
      rows.push({
        figure: `Push->delivery p50 / p99, ${kind.toUpperCase()} ${fmtNum(s.fan)}, ` +
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
  for (const st of (b.stream ?? []).filter((x) => x.matches === "fixed")) {
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
  const steady = _KINDS.flatMap((k) => c[`latency_sweep_${k}`] ?? [])
    .reduce((n, x) => n + Math.max(0, x.lost), 0) +
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
  const sat = _KINDS.flatMap((k): FanResult[] => c[`fanout_${k}`] ?? [])
    .concat(allPairs.map((p) => p.comet))
    .reduce((n, x) => n + Math.max(0, x.lost), 0);
  const satBase = (b.fanout ?? []).map((r): BaselineFanRun => r)
    .concat(allPairs.map((p) => p.baseline))
    .reduce((n, x) => n + Math.max(0, x.lost), 0);
  const slow = _KINDS.flatMap((k): FanResult[] => [
    ...(c[`fanout_${k}`] ?? []),
    ...(c[`latency_sweep_${k}`] ?? []),
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
  for (const kind of s.burstKinds) {
    const entry = c[`burst_${kind}`];
    const r: BurstRun | undefined = entry === undefined || "error" in entry ? undefined : entry;
    const head = `Room burst, ${fmtNum(r?.members ?? s.burstMembers)} ${kind.toUpperCase()} ` +
      `members, ${fmtNum(s.burstPushes)} pushes (${s.pushers} conns, default flags` +
      (s.cometFlags.length ? ` + ${s.cometFlags.join(" ")})` : ")");
    if (!r) {
      rows.push({
        figure: `${head}: deliveries lost`,
        comet: entry ? "error" : "n/a",
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
  const cl = c.cluster;
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

/** The rows as a Markdown table with a header. */
export function printTable(rows: Row[]): string {
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
