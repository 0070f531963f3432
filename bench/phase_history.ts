// The history phase (issue 20): what streams cost a room fan-out. Two Comets
// side by side, one with `--history-size 0` (streams off) and one with the
// default history, measured in turn at the largest room: the off server with
// goim members, the on server with goim members (each push stamped and kept,
// bytes unchanged), and the on server with opted-in members (each push also
// encoded once as op 18 and queued to every member). The medians of the
// on/off ratios are the figures; the goal is 0.9x or better.
import { cometFanRun, grow } from "./fan_runs.ts";
import type { Harness } from "./harness.ts";
import type { HistoryResult, HistoryRound } from "./records.ts";
import { disturbance } from "./quiet_guard.ts";
import { log } from "./run_log.ts";
import { type CometProc, spawnComet, stopComet } from "./servers.ts";

function _median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((x, y) => x - y);
  return s[(s.length - 1) >> 1]! / 2 + s[s.length >> 1]! / 2;
}

/** See the module comment; `s.historyPairs` undisturbed rounds over TCP. */
export async function historyPhase(h: Harness): Promise<void> {
  const { gen, guard, settings: s } = h;
  const off = await spawnComet(h, "history-off", false, ["--history-size", "0"]);
  const on = await spawnComet(h, "history-on", false);
  const record: HistoryResult = {
    members: s.fan,
    rounds: [],
    plainMedian: null,
    streamsMedian: null,
  };
  h.results.history = record;
  const run = async (comet: CometProc, streams: boolean, ms: number) => {
    await grow(h, 0, s.fan, {
      kind: "tcp",
      port: comet.tcp,
      keyPrefix: `h${streams ? "s" : "p"}`,
      streams,
    });
    try {
      return await cometFanRun(h, comet, s.fan, ms);
    } finally {
      await gen.closeAll();
    }
  };
  try {
    await gen.closeAll();
    log(`history: ${s.fan} TCP members, streams off / on (goim members) / on (opted in)`);
    // Warm-up: every path compiled before anything counts.
    for (const [c, streams] of [[off, false], [on, false], [on, true]] as const) {
      await run(c, streams, 1_000);
    }
    let clean = 0;
    for (let i = 0; clean < s.historyPairs; i++) {
      guard.checkDeadline("history rounds");
      const start = performance.now();
      const a = await run(off, false, s.runMs);
      const b = await run(on, false, s.runMs);
      const c = await run(on, true, s.runMs);
      const round: HistoryRound = {
        off: a,
        onPlain: b,
        onStreams: c,
        plainRatio: b.deliveriesPerSec / a.deliveriesPerSec,
        streamsRatio: c.deliveriesPerSec / a.deliveriesPerSec,
        disturbance: [disturbance(a), Math.max(disturbance(b), disturbance(c))],
      };
      record.rounds.push(round);
      log(
        `  round ${i + 1}: off ${a.deliveriesPerSec.toFixed(0)}/s, on ${
          b.deliveriesPerSec.toFixed(0)
        }/s (${round.plainRatio.toFixed(2)}x), on opted in ${c.deliveriesPerSec.toFixed(0)}/s (${
          round.streamsRatio.toFixed(2)
        }x); lost ${a.lost}, ${b.lost}, ${c.lost}`,
      );
      if (guard.settlePair(round, `history round ${i + 1}`, start)) clean++;
    }
    const kept = record.rounds.filter((r) => !r.disturbed);
    record.plainMedian = _median(kept.map((r) => r.plainRatio));
    record.streamsMedian = _median(kept.map((r) => r.streamsRatio));
    log(
      `history: median on/off ${record.plainMedian?.toFixed(2)}x with goim members, ` +
        `${record.streamsMedian?.toFixed(2)}x opted in`,
    );
  } finally {
    await stopComet(s, off, "history-off");
    await stopComet(s, on, "history-on");
  }
}
