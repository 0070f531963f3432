// One measured fan-out run: room pushes into Comet, or the plain-Deno
// server's batches and streams, with the deliveries counted by the load
// generators and every process's CPU. Shared by the fan-out, pairs and
// cluster phases.
import { cpuSeconds, nowMs } from "./_common.ts";
import type { Harness } from "./harness.ts";
import type { GenFigures } from "./load_gens.ts";
import { countSendto } from "./machine_cpu.ts";
import type { BaselineProtocol, ClientKind } from "./messages.ts";
import { pushRoom } from "./pushers.ts";
import type {
  BaselineFanRun,
  BaselineStreamRun,
  FanResult,
  RoomPushRun,
  RunFigures,
} from "./records.ts";
import type { Child } from "./child.ts";
import type { RunMachine } from "./quiet_guard.ts";
import { log } from "./run_log.ts";
import type { CometProc } from "./servers.ts";
import { CONCURRENCY } from "./settings.ts";

/**
 * Room pushes into `api` for `ms` (at `rate`, or as fast as it answers)
 * while the processes `pids` are measured: the figures every room-push run
 * reports, each process's CPU in cores, and what the generators counted.
 */
export async function roomPushRun(
  h: Harness,
  api: number,
  pids: readonly number[],
  ms: number,
  rate?: number,
): Promise<{ run: Omit<RoomPushRun, "serverCpu">; cpu: number[]; s: GenFigures }> {
  const { gen, guard } = h;
  await guard.gate();
  await gen.reset();
  // Members still connected now: the slow-consumer policy may have closed some earlier.
  const members = (await gen.stats()).live;
  const measure = guard.measureFrom(pids, gen);
  const d0 = cpuSeconds(Deno.pid);
  const push = await pushRoom(api, ms, h.settings.pushers, rate);
  const d1 = cpuSeconds(Deno.pid);
  const s = await gen.quiet({ idleMs: 500, maxMs: 20_000, perMember: push.ok });
  const span = Math.max(push.elapsedMs, (s.lastDeliveryAt) - push.startAt);
  const m = measure(span);
  const run = {
    members,
    membersAfter: s.live,
    slowClosed: s.disconnects,
    pushesOk: push.ok,
    pushesFailed: push.failed,
    pushMs: push.elapsedMs,
    ..._delivered(s, push.ok * members, span),
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

/** A room-push run into `comet`, with its socket writes counted where perf allows. */
export async function cometFanRun(
  h: Harness,
  comet: CometProc,
  size: number,
  ms: number,
  rate?: number,
): Promise<FanResult> {
  const stopCount = await countSendto(comet.child.pid);
  const { run, cpu, s } = await roomPushRun(h, comet.api, [comet.child.pid], ms, rate);
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

/** The plain-Deno server writing batches of `frames` frames, `k` writes in flight (0: all). */
export async function baselineFanRun(
  h: Harness,
  base: Child<BaselineProtocol>,
  size: number,
  ms: number,
  frames: number,
  k: number = h.settings.baseInflight,
): Promise<BaselineFanRun> {
  const { r, s, span, m, sends } = await _baselineRun(
    h,
    base,
    "fanout",
    { ms, frames, k },
    (r) => r.batches * r.frames,
  );
  return {
    size,
    framesPerBatch: frames,
    inflight: k === 0 ? "unbounded" : k,
    members: r.conns,
    ..._writes(sends, s),
    batches: r.batches,
    ..._delivered(s, r.batches * r.conns * r.frames, span),
    batchesPerSec: (r.batches / r.elapsedMs) * 1000,
    latency: s.latency,
    ..._machine(m),
    framesPerRead: s.deliveries / Math.max(1, s.reads),
  };
}

/** The baseline's coalescing writers fed at `rate` frames/s: the runtime's latency at that rate. */
export async function baselineStreamRun(
  h: Harness,
  base: Child<BaselineProtocol>,
  size: number,
  ms: number,
  rate: number,
): Promise<BaselineStreamRun> {
  const inflight = h.settings.baseInflight;
  const { r, s, span, m, sends } = await _baselineRun(
    h,
    base,
    "stream",
    { ms, rate, k: inflight },
    (r) => r.produced,
  );
  return {
    size,
    rate,
    inflight,
    members: r.conns,
    produced: r.produced,
    ..._writes(sends, s),
    ..._delivered(s, r.produced * r.conns, span),
    latency: s.latency,
    ..._machine(m),
    perConnMeanLatency: s.perConnMeanLatency,
    timeline: s.timeline,
    perGen: s.perGen,
  };
}

/**
 * One measured command of the plain-Deno server: its reply, what the
 * generators counted once deliveries stopped (`perMember(reply)` each), the
 * run's span, the machine's figures over it and the server's socket writes.
 */
async function _baselineRun<C extends "fanout" | "stream">(
  h: Harness,
  base: Child<BaselineProtocol>,
  command: C,
  args: BaselineProtocol[C]["args"] & { ms: number },
  perMember: (r: BaselineProtocol[C]["reply"]) => number,
) {
  const { gen, guard } = h;
  await guard.gate();
  await gen.reset();
  const stopCount = await countSendto(base.pid);
  const measure = guard.measureFrom([base.pid], gen);
  const startAt = nowMs();
  const r = await base.call(command, args, args.ms + 60_000);
  const s = await gen.quiet({ idleMs: 500, maxMs: 20_000, perMember: perMember(r) });
  const span = Math.max(r.elapsedMs, (s.lastDeliveryAt) - startAt);
  const m = measure(span);
  return { r, s, span, m, sends: await stopCount() };
}

/** A baseline run's socket writes and the frames each carried (null where perf could not count). */
function _writes(sends: number | null, s: GenFigures) {
  return {
    writes: sends,
    framesPerWrite: sends === null ? null : s.deliveries / Math.max(1, sends),
  };
}

/** What the generators got of `expected` deliveries over `span` ms. */
function _delivered(s: GenFigures, expected: number, span: number) {
  return {
    deliveries: s.deliveries,
    expected,
    lost: expected - s.deliveries,
    deliveriesPerSec: (s.deliveries / span) * 1000,
  };
}

/** A one-server run's CPU, machine and network figures, the server first among the measured. */
function _machine(m: RunMachine): RunFigures {
  return {
    serverCpu: m.cpu[0]!,
    genCpu: m.genCpu,
    machine: m.machine,
    foreignCores: m.foreignCores,
    net: m.net,
  };
}

let _keysOpened = 0;

/**
 * Opens connections until `size` are in the room (counting the live ones: the
 * slow-consumer policy may have closed some); returns the live count.
 */
export async function grow(
  h: Harness,
  _have: number,
  size: number,
  open: { kind: ClientKind; port: number; keyPrefix: string; streams?: boolean },
): Promise<number> {
  const gen = h.gen;
  const live = (await gen.stats()).live;
  if (size <= live) return live;
  const r = await gen.open({
    count: size - live,
    keyStart: _keysOpened,
    concurrency: CONCURRENCY,
    bufSize: h.settings.clientBuf,
    ...open,
  }, 90_000);
  _keysOpened += size - live;
  if (r.failed > 0) log(`  ${r.failed} connections failed: ${r.errors.join("; ")}`);
  return r.live;
}
