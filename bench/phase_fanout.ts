// The fan-out phases: Comet's room fan-out over TCP or WebSocket at every
// room size with its latency sweep, and the plain-Deno server's ceiling at
// the same sizes (one frame per write, and Comet's frames per write).
import type { Harness } from "./harness.ts";
import { baselineFanRun, baselineStreamRun, cometFanRun, grow } from "./fan_runs.ts";
import { cpuNote } from "./machine_cpu.ts";
import { keysPhase } from "./phase_keys.ts";
import type { BaselineStream, FanResult, LatencyRun } from "./records.ts";
import { log } from "./run_log.ts";
import { spawnBaseline, spawnComet, stopComet } from "./servers.ts";
import { LOW_RATE, STREAM_RATES } from "./settings.ts";

/** Comet's frames per write at `size` in a saturation run of `kind`, rounded; 1 if unknown. */
function _cometFramesPerWrite(h: Harness, kind: "tcp" | "ws", size: number): number {
  const run = h.results.comet[`fanout_${kind}`]?.find((r) => r.size === size);
  const f = run?.framesPerWrite ?? run?.framesPerRead ?? 1;
  return Math.max(1, Math.round(f));
}

/**
 * The runtime ceiling, after Comet's fan-out runs: at every room size, one
 * frame per write (the literal baseline), and the same number of frames per
 * write as Comet's writers managed (same bytes, same number of writes): the
 * fair ceiling for a server that coalesces queued frames.
 */
export async function baselineFanPhase(h: Harness): Promise<void> {
  const { gen, guard, settings: s, results } = h;
  log("baseline: plain Deno TCP server, fan-out ceiling");
  const { child: base, port } = await spawnBaseline(s, "baseline-fan");
  results.baseline.fanout = [];
  results.baseline.fanout_matched = [];
  try {
    let have = 0;
    for (const size of s.sizes) {
      guard.checkDeadline("baseline fan-out");
      have = await grow(h, have, size, { kind: "raw", port, keyPrefix: "f" });
      const ks = new Map<number, string[]>([[1, ["1"]]]);
      for (const kind of ["tcp", "ws"] as const) {
        if (!results.comet[`fanout_${kind}`]) continue;
        const k = _cometFramesPerWrite(h, kind, size);
        ks.set(k, [...(ks.get(k) ?? []), kind]);
      }
      for (const [k, tags] of ks) {
        const r = await guard.measured(
          `baseline fan-out ${size}`,
          () => baselineFanRun(h, base, size, s.runMs, k),
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
      guard.checkDeadline("baseline unbounded fan-out");
      const r = await guard.measured(
        `baseline fan-out ${have}, unbounded`,
        () => baselineFanRun(h, base, have, s.runMs, 1, 0),
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
    const stream: BaselineStream[] = [];
    results.baseline.stream = stream;
    const rates: { kind: string; fraction: number; rate: number }[] = [];
    for (const kind of ["tcp", "ws"] as const) {
      for (const lat of results.comet[`latency_sweep_${kind}`] ?? []) {
        if (kind === "ws" && lat.fraction !== 0.5) continue;
        rates.push({ kind, fraction: lat.fraction, rate: lat.pushesPerSec });
      }
    }
    if (rates.length === 0) {
      for (const rate of STREAM_RATES) rates.push({ kind: "fixed", fraction: -1, rate });
    }
    for (const { kind, fraction, rate } of rates) {
      guard.checkDeadline("baseline stream");
      const r = await guard.measured(
        "baseline stream",
        () => baselineStreamRun(h, base, have, s.latMs, rate),
      );
      stream.push({ ...r, matches: kind, fraction });
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

/** Comet's room fan-out over `kind` at every room size, its latency sweep, and (TCP) the key pushes. */
export async function fanPhase(h: Harness, kind: "tcp" | "ws", phase: string): Promise<void> {
  const { gen, guard, settings: s, results } = h;
  log(`comet: room fan-out over ${kind}, room sizes ${s.sizes.join(", ")}`);
  const comet = await spawnComet(h, phase, false);
  const runs: FanResult[] = [];
  results.comet[`fanout_${kind}`] = runs;
  try {
    const port = kind === "tcp" ? comet.tcp : comet.ws;
    let have = 0;
    for (const size of s.sizes) {
      guard.checkDeadline(`${kind} fan-out`);
      const r = await guard.measured(`${kind} fan-out ${size}`, async () => {
        have = await grow(h, have, size, { kind, port, keyPrefix: `f${kind}` });
        return await cometFanRun(h, comet, have, s.runMs);
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
    const sweep: LatencyRun[] = [];
    results.comet[`latency_sweep_${kind}`] = sweep;
    // The last entry is a fixed low rate: the latency floor at this room size.
    for (const fraction of kind === "tcp" ? [2, 4, 8, 0] : [2, 0]) {
      guard.checkDeadline(`${kind} latency`);
      const rate = fraction === 0 ? LOW_RATE : top.deliveriesPerSec / fraction / s.fan;
      const lat = {
        ...(await guard.measured(`${kind} latency`, async () => {
          have = await grow(h, have, s.fan, { kind, port, keyPrefix: `f${kind}` });
          return await cometFanRun(h, comet, have, s.latMs, rate);
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
    if (kind === "tcp") await keysPhase(h, comet);
    await gen.closeAll();
  } finally {
    await stopComet(s, comet, phase);
  }
}
