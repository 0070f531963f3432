// The workers phase (issue 19): Comet with `--workers 1` and with
// `--workers N` alternating, each side a fresh server measured for memory
// and connect rate, room fan-out at saturation and push->delivery latency at
// a low fixed rate, with where the machine's CPU went in every run.
import { cpuNote } from "./machine_cpu.ts";
import { cometFanRun, grow } from "./fan_runs.ts";
import type { Harness } from "./harness.ts";
import { cometGc, heapNote, measureMemory } from "./phase_memory.ts";
import { disturbance } from "./quiet_guard.ts";
import type { CpuWhere, FanResult, WorkersPair, WorkersResult, WorkersSide } from "./records.ts";
import { log } from "./run_log.ts";
import { cometHasWorkers, type CometProc, spawnComet, stopComet } from "./servers.ts";
import { LOW_RATE } from "./settings.ts";

/** Where the CPU went in run `r`, in cores; see {@linkcode CpuWhere}. */
function _cpuWhere(r: FanResult): CpuWhere {
  const cores = navigator.hardwareConcurrency;
  return {
    server: r.serverCpu,
    gens: r.genCpu,
    pusher: r.pusherCpu,
    system: r.machine.system * cores,
    softirq: r.machine.softirq * cores,
    steal: r.machine.steal * cores,
    other: r.foreignCores,
    idle: (1 - r.machine.busy) * cores,
  };
}

/** "server 0.95 gens 0.80 ... idle 0.10 cores" for a log line. */
export function cpuWhereNote(c: CpuWhere): string {
  return `server ${c.server.toFixed(2)} gens ${c.gens.toFixed(2)} pusher ${
    c.pusher.toFixed(2)
  } kernel: system ${c.system.toFixed(2)} softirq ${c.softirq.toFixed(2)}; steal ${
    c.steal.toFixed(2)
  } other ${c.other.toFixed(2)} idle ${c.idle.toFixed(2)} cores`;
}

/**
 * The members each worker of `comet` holds, from the BENCH_WORKERS line
 * bench/comet_gc.ts prints on SIGWINCH; null where it does not answer.
 */
async function _membersPerWorker(comet: CometProc): Promise<number[] | null> {
  if (comet.workers === 1) return null;
  const before = Date.now();
  comet.child.proc.kill("SIGWINCH");
  try {
    const m = await comet.child.waitFor((l, s) => {
      if (s !== "err") return null;
      const x = /BENCH_WORKERS (\{.*"at":(\d+)\})/.exec(l);
      return x && Number(x[2]) >= before - 5 ? x : null;
    }, 5_000);
    const conns = (JSON.parse(m[1]!) as { conns: (number | null)[] }).conns;
    return conns.every((n) => n !== null) ? conns as number[] : null;
  } catch {
    return null;
  }
}

/**
 * One side of a pair: a fresh Comet with `workers` workers, its memory per
 * idle TCP connection and connect+auth rate, then the largest room at
 * saturation and at the low fixed rate on the same members.
 */
async function _side(h: Harness, workers: number): Promise<WorkersSide> {
  const { gen, settings: s } = h;
  const phase = `workers-${workers}`;
  const comet = await spawnComet(h, phase, true, [], false, workers);
  try {
    await gen.closeAll();
    const memory = await measureMemory(h, comet.child.pid, cometGc(comet.child), {
      kind: "tcp",
      port: comet.tcp,
      count: s.memConns,
      keyPrefix: `wm${workers}-`,
    });
    await gen.closeAll();
    const open = { kind: "tcp" as const, port: comet.tcp, keyPrefix: `w${workers}-` };
    await grow(h, 0, s.fan, open);
    const membersPerWorker = await _membersPerWorker(comet);
    // Warm-up: the JIT of every worker compiles the push path before anything counts.
    await cometFanRun(h, comet, s.fan, 1_000);
    const fan = await cometFanRun(h, comet, s.fan, s.runMs);
    await grow(h, 0, s.fan, open);
    const latency = await cometFanRun(h, comet, s.fan, s.latMs, LOW_RATE);
    return {
      workers,
      memory,
      fan,
      fanCpu: _cpuWhere(fan),
      latency,
      latencyCpu: _cpuWhere(latency),
      membersPerWorker,
    };
  } finally {
    await gen.closeAll().catch(() => {});
    await stopComet(s, comet, phase);
  }
}

/** The log lines of one side. */
function _logSide(i: number, w: WorkersSide): void {
  const head = `  pair ${i + 1}, ${w.workers} worker${w.workers === 1 ? "" : "s"}:`;
  const m = w.memory;
  log(
    `${head} RSS/conn ${(m.perConnBytes / 1024).toFixed(2)} KiB (${heapNote(m)}), ` +
      `${m.handshakesPerSec.toFixed(0)} connect+auth/s (${m.failed} failed), ${cpuNote(m)}`,
  );
  const f = w.fan, l = w.latency;
  log(
    `${head} fan-out ${f.members}: ${f.deliveriesPerSec.toFixed(0)} deliveries/s, ` +
      `${f.pushesPerSec.toFixed(1)} pushes/s, lost ${f.lost}` +
      (f.slowClosed ? `, ${f.slowClosed} closed as slow` : "") +
      (w.membersPerWorker ? `; members per worker ${w.membersPerWorker.join(" / ")}` : ""),
  );
  log(`    cpu: ${cpuWhereNote(w.fanCpu)}`);
  log(
    `${head} ${l.pushesPerSec.toFixed(1)} pushes/s to ${l.members}: p50 ${l.latency.p50} ` +
      `p99 ${l.latency.p99} max ${l.latency.max?.toFixed(1)} ms, lost ${l.lost}`,
  );
  log(`    cpu: ${cpuWhereNote(w.latencyCpu)}`);
}

/** The median of `xs` (null when empty). */
function _median(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  return v[(v.length - 1) >> 1]! / 2 + v[v.length >> 1]! / 2;
}

/**
 * `--workers 1` against `--workers N` (`s.workersN`), `s.workersPairs`
 * undisturbed pairs, each side a fresh server (see {@linkcode _side}). A
 * pair in which other programs or the hypervisor took more than 0.2 cores
 * from either side is measured again while the retry budget lasts, as the
 * fan-out pairs are. The medians of the undisturbed pairs hold the targets.
 */
export async function workersPhase(h: Harness): Promise<void> {
  const { guard, settings: s } = h;
  if (!(await cometHasWorkers())) {
    log("workers: this Comet has no --workers flag: skipped");
    h.results.workers = { skipped: "no --workers flag" };
    return;
  }
  const n = s.workersN;
  log(
    `workers: Comet --workers 1 and --workers ${n} alternating, ${s.workersPairs} pair(s): ` +
      `${s.memConns} idle TCP connections, then ${s.fan} TCP members at saturation and at ` +
      `${LOW_RATE} pushes/s`,
  );
  const record: WorkersResult = {
    workers: n,
    members: s.fan,
    memConns: s.memConns,
    rate: LOW_RATE,
    pairs: [],
    medianP99Ratio: null,
    medianFanRatio: null,
    medianHandshakeRatio: null,
    medianMemMany: null,
    medianMemOne: null,
  };
  h.results.workers = record;
  try {
    let clean = 0;
    for (let i = 0; clean < s.workersPairs; i++) {
      // Pairs already measured stand: the medians hold them, and an outer
      // limit (bench/device_workers.sh's timeout) must not take them too.
      if (record.pairs.length > 0 && guard.outOfTime()) {
        log(`  out of time after ${record.pairs.length} pair(s): the medians hold those`);
        // Disturbed pairs count where no other pair was measured, as when the
        // retry budget runs out.
        if (clean === 0) { for (const p of record.pairs) delete p.disturbed; }
        break;
      }
      guard.checkDeadline("workers pair");
      const start = performance.now();
      const one = await _side(h, 1);
      _logSide(i, one);
      const many = await _side(h, n);
      _logSide(i, many);
      const side = (w: WorkersSide) =>
        Math.max(disturbance(w.fan), disturbance(w.latency), disturbance(w.memory));
      const p99One = one.latency.latency.p99, p99Many = many.latency.latency.p99;
      const pair: WorkersPair = {
        one,
        many,
        p99Ratio: p99One && p99Many !== null ? p99Many / p99One : null,
        fanRatio: many.fan.deliveriesPerSec / one.fan.deliveriesPerSec,
        handshakeRatio: many.memory.handshakesPerSec / one.memory.handshakesPerSec,
        disturbance: [side(one), side(many)],
      };
      record.pairs.push(pair);
      log(
        `  pair ${i + 1}: ${n} workers / 1: p99 ${pair.p99Ratio?.toFixed(2) ?? "n/a"}x, ` +
          `fan-out ${pair.fanRatio.toFixed(2)}x, connect+auth ` +
          `${pair.handshakeRatio?.toFixed(2) ?? "n/a"}x`,
      );
      if (guard.settlePair(pair, `pair ${i + 1}`, start)) clean++;
    }
  } catch (err) {
    log(`  workers phase failed: ${(err as Error).message.slice(0, 500)}`);
    h.results.workers = { error: String((err as Error).message ?? err).slice(0, 2000) };
    throw err;
  }
  const kept = record.pairs.filter((p) => !p.disturbed);
  record.medianP99Ratio = _median(kept.map((p) => p.p99Ratio));
  record.medianP99Many = _median(kept.map((p) => p.many.latency.latency.p99));
  record.medianFanRatio = _median(kept.map((p) => p.fanRatio));
  record.medianHandshakeRatio = _median(kept.map((p) => p.handshakeRatio));
  record.medianMemMany = _median(kept.map((p) => p.many.memory.perConnBytes));
  record.medianMemOne = _median(kept.map((p) => p.one.memory.perConnBytes));
}
