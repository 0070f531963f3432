// The paired fan-out phase: Comet and plain Deno alternating at the largest
// room, seconds apart, so each pair shares the machine's state; the median
// of the pairs' ratios holds the fan-out targets.
import type { Child } from "./child.ts";
import { baselineFanRun, cometFanRun, grow } from "./fan_runs.ts";
import type { Harness } from "./harness.ts";
import type { NetCounters } from "./machine_cpu.ts";
import type { BaselineProtocol } from "./messages.ts";
import type { FanPair, PairsResult, WriteCost } from "./records.ts";
import { disturbance, stealCores } from "./quiet_guard.ts";
import { log } from "./run_log.ts";
import { type CometProc, spawnBaseline, spawnComet, stopComet } from "./servers.ts";

/**
 * What one socket write cost the server in a fan-out run, and how many
 * context switches the machine made per write, so that a pair's gap can be
 * told apart into the server's own CPU and what the machine did around it.
 */
function _writeCost(
  r: {
    writes: number | null;
    serverCpu: number;
    deliveries: number;
    deliveriesPerSec: number;
    net: NetCounters;
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
 * run made, `s.pairs` times over TCP and `s.wsPairs` times with Comet over
 * WebSocket, both servers up throughout and each run on its own
 * freshly opened members (the generators count deliveries for every client
 * they hold). The median ratio of the undisturbed pairs is the figure; every
 * pair is kept. A pair in which other programs or the hypervisor took more
 * than 0.2 cores from either run is measured again while the retry budget
 * lasts, as `guard.measured()` does for single runs.
 */
export async function pairedFanPhase(h: Harness): Promise<void> {
  const { gen, settings: s } = h;
  const comet = await spawnComet(h, "fanout-pairs", false);
  const { child: base, port } = await spawnBaseline(s, "fanout-pairs");
  try {
    await gen.closeAll();
    for (const [kind, count] of [["tcp", s.pairs], ["ws", s.wsPairs]] as const) {
      if (count > 0) await _fanPairs(h, kind, count, comet, base, port);
    }
  } finally {
    await stopComet(s, comet, "fanout-pairs");
    await base.stop("SIGTERM", 3_000);
  }
}

/** `count` undisturbed pairs of Comet over `kind` and plain Deno over TCP; see {@linkcode pairedFanPhase}. */
async function _fanPairs(
  h: Harness,
  kind: "tcp" | "ws",
  count: number,
  comet: CometProc,
  base: Child<BaselineProtocol>,
  port: number,
): Promise<void> {
  const { gen, guard, settings: s } = h;
  const K = kind.toUpperCase();
  log(
    `paired fan-out: ${s.fan} ${K} members, Comet and plain Deno (TCP) alternating, ${count} pairs`,
  );
  const pairs: FanPair[] = [];
  const record: PairsResult = { members: s.fan, pairs, medianRatio: null };
  h.results[`fanout_pairs_${kind}`] = record;
  const cometRun = async (ms: number) => {
    const cometPort = kind === "tcp" ? comet.tcp : comet.ws;
    await grow(h, 0, s.fan, { kind, port: cometPort, keyPrefix: `p${kind}` });
    try {
      return await cometFanRun(h, comet, s.fan, ms);
    } finally {
      await gen.closeAll();
    }
  };
  const baseRun = async (ms: number, frames: number) => {
    await grow(h, 0, s.fan, { kind: "raw", port, keyPrefix: "pb" });
    try {
      return await baselineFanRun(h, base, s.fan, ms, frames);
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
    guard.checkDeadline(`paired ${kind} fan-out`);
    const start = performance.now();
    const c = await cometRun(s.runMs);
    const frames = Math.max(1, Math.round(c.framesPerWrite ?? c.framesPerRead));
    const b = await baseRun(s.runMs, frames);
    const pair: FanPair = {
      comet: c,
      baseline: b,
      ratio: c.deliveriesPerSec / b.deliveriesPerSec,
      disturbance: [disturbance(c), disturbance(b)],
      perWrite: [_writeCost(c), _writeCost(b)],
    };
    pairs.push(pair);
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
    if (guard.settlePair(pair, `${K} pair ${i + 1}`, start)) clean++;
  }
  const sorted = pairs.filter((p) => !p.disturbed).map((p) => p.ratio).sort((x, y) => x - y);
  record.medianRatio = sorted[(sorted.length - 1) >> 1]! / 2 + sorted[sorted.length >> 1]! / 2;
}
