// `deno task bench`: micro benchmarks, then the load harness. Starts the real
// Comet server and a plain-Deno baseline server as child processes, drives
// them over loopback sockets from a separate load-generator process, prints
// one table and writes bench/out/results.json and bench/out/fanout.svg.
//
// Flags (all optional):
//   --quick              small sizes and short runs, for trying the harness out
//   --no-micro           skip the Deno.bench micro benchmarks
//   --phases=a,b         only these phases: baseline (= baseline-mem + baseline-fan),
//                        mem-tcp, mem-ws, mem-serve, fanout-tcp, fanout-ws, fanout-pairs, history,
//                        burst (= burst-tcp + burst-ws), cluster (push-keys runs inside
//                        fanout-tcp), workers; `--phases=burst --no-micro` runs the burst alone
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
//   --workers-n=N        the workers phase's Comet --workers N against --workers 1
//                        (default: one per core); every other phase runs --workers 1
//   --history-pairs=K    rounds of the history phase: streams off, on, on and opted in
//                        (default 3, 1 with --quick)
//   --workers-pairs=K    one-worker/N-worker pairs of the workers phase (default 3, 1 with
//                        --quick); --profile=workers-1 or workers-N profiles one side
//   --server-cpus=LIST   run every server (Comet, plain Deno, Redis) under taskset -c LIST
//   --gen-cpus=LIST      run the load generators under taskset -c LIST, and pin the harness
//                        (its pushers) there too; both need taskset (default: no pinning)
//   --max-run-s=S        start no run later than S seconds in (default: an estimate, ~8 min)
//
// The parts: settings.ts (flags), child.ts and servers.ts (child processes),
// load_gens.ts (the load generators), quiet_guard.ts and machine_cpu.ts (what
// other programs took), one phase_*.ts per phase family, table.ts and
// chart.ts (the output), records.ts (what results.json holds).
import { elapsedSec, log } from "./run_log.ts";
import { chart } from "./chart.ts";
import { OUT } from "./child.ts";
import type { Harness } from "./harness.ts";
import { LoadGens } from "./load_gens.ts";
import { microTable, runMicro } from "./micro.ts";
import { burstPhase } from "./phase_burst.ts";
import { clusterPhase } from "./phase_cluster.ts";
import { baselineFanPhase, fanPhase } from "./phase_fanout.ts";
import { baselineMemPhase, memPhase, memServePhase } from "./phase_memory.ts";
import { historyPhase } from "./phase_history.ts";
import { pairedFanPhase } from "./phase_pairs.ts";
import { workersPhase } from "./phase_workers.ts";
import { QuietGuard, stealCores } from "./quiet_guard.ts";
import { createResults, sourceState } from "./results.ts";
import { parseSettings } from "./settings.ts";
import { buildTable, printTable } from "./table.ts";
import { workersRows } from "./table_workers.ts";
import { applyPinning, pinningNote } from "./pinning.ts";

const s = parseSettings(Deno.args);
Deno.mkdirSync(OUT, { recursive: true });
// Before the pinning: the machine's cores, not the harness's share of them.
const results = createResults(s);
await applyPinning(s);
log(`pinning: ${pinningNote(s)}`);
const guard = new QuietGuard(s.hardDeadline);
const PHASES = s.phases;

results.source = await sourceState();
guard.monitor.start();
{
  const load = await guard.waitQuiet();
  results.contention = { atStartCores: load };
  log(`other programs on this machine at start: ${load.toFixed(2)} cores`);
}
const contention = results.contention;
if (s.micro) await runMicro(results);
const gen = new LoadGens(s.gens, s.genCpus);
const h: Harness = { settings: s, results, gen, guard };
try {
  await gen.stats();
  if (PHASES.has("baseline") || PHASES.has("baseline-mem")) await baselineMemPhase(h);
  if (PHASES.has("mem-tcp")) await memPhase(h, "tcp", "mem-tcp");
  if (PHASES.has("mem-ws")) await memPhase(h, "ws", "mem-ws");
  if (PHASES.has("mem-serve")) await memServePhase(h);
  if (PHASES.has("fanout-tcp")) await fanPhase(h, "tcp", "fanout-tcp");
  if (PHASES.has("fanout-ws")) await fanPhase(h, "ws", "fanout-ws");
  if (PHASES.has("baseline") || PHASES.has("baseline-fan")) await baselineFanPhase(h);
  if (PHASES.has("fanout-pairs")) await pairedFanPhase(h);
  if (PHASES.has("history")) await historyPhase(h);
  if (s.burstKinds.length) await burstPhase(h);
  if (PHASES.has("cluster")) await clusterPhase(h);
  if (PHASES.has("workers")) await workersPhase(h);
} catch (err) {
  log(`run aborted: ${(err as Error).stack ?? err}`);
  results.error = String((err as Error).message ?? err);
} finally {
  await gen.stop();
}

guard.monitor.stop();
contention.wholeRunCores = guard.monitor.since({ foreign: 0, elapsed: 0 });
const rows = [...buildTable(results, s), ...workersRows(results)];
results.table = rows;
results.elapsedSec = elapsedSec();
Deno.writeTextFileSync(new URL("results.json", OUT), JSON.stringify(results, null, 2) + "\n");
if (results.baseline.fanout || results.comet.fanout_tcp) {
  Deno.writeTextFileSync(new URL("fanout.svg", OUT), chart(results));
}
const foreignRuns = JSON.stringify(results).match(/"foreignCores":[0-9.e-]+/g) ?? [];
const worstForeign = Math.max(0, ...foreignRuns.map((x) => Number(x.split(":")[1])));
contention.worstRunCores = worstForeign;
const stealRuns = (JSON.stringify(results).match(/"steal":[0-9.e-]+/g) ?? [])
  .map((x) => stealCores({ steal: Number(x.split(":")[1]) }));
const worstSteal = Math.max(0, ...stealRuns);
contention.worstRunStealCores = worstSteal;
Deno.writeTextFileSync(new URL("results.json", OUT), JSON.stringify(results, null, 2) + "\n");
const burstFlags = s.burstKinds.map((k) => {
  const r = results.comet[`burst_${k}`];
  return r === undefined || "error" in r ? undefined : r.flags;
}).find((f) => f);
const micros = microTable(results);
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
    (burstFlags ? ` (the burst phase with only ${burstFlags.join(" ")})` : "") +
    (s.serverV8Flags.length ? `; every server with V8 flags ${s.serverV8Flags.join(",")}` : "") +
    `; pinning: ${pinningNote(s)}`,
);
console.log(
  `Other programs' CPU during the run: ${contention.wholeRunCores.toFixed(2)} cores on ` +
    `average, ${worstForeign.toFixed(2)} in the worst measured run; hypervisor steal ` +
    `${worstSteal.toFixed(2)} cores in the worst run` +
    (Math.max(worstForeign, worstSteal) > 0.15
      ? " -- figures are contaminated; rerun on a quiet machine."
      : "."),
);
if (results.error) Deno.exit(1);
