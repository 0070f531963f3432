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
import type { BaselineFanRun, BaselineStreamRun, FanResult, RoomPushRun } from "./records.ts";
import type { Child } from "./child.ts";
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
  const expected = push.ok * members;
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
  const { gen, guard } = h;
  await guard.gate();
  await gen.reset();
  const stopCount = await countSendto(base.pid);
  const measure = guard.measureFrom([base.pid], gen);
  const startAt = nowMs();
  const r = await base.call("fanout", { ms, frames, k }, ms + 60_000);
  const expected = r.batches * r.conns * r.frames;
  const s = await gen.quiet({ idleMs: 500, maxMs: 20_000, perMember: r.batches * r.frames });
  const span = Math.max(r.elapsedMs, (s.lastDeliveryAt) - startAt);
  const m = measure(span);
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
export async function baselineStreamRun(
  h: Harness,
  base: Child<BaselineProtocol>,
  size: number,
  ms: number,
  rate: number,
): Promise<BaselineStreamRun> {
  const { gen, guard } = h;
  const inflight = h.settings.baseInflight;
  await guard.gate();
  await gen.reset();
  const stopCount = await countSendto(base.pid);
  const measure = guard.measureFrom([base.pid], gen);
  const startAt = nowMs();
  const r = await base.call("stream", { ms, rate, k: inflight }, ms + 60_000);
  const expected = r.produced * r.conns;
  const s = await gen.quiet({ idleMs: 500, maxMs: 20_000, perMember: r.produced });
  const span = Math.max(r.elapsedMs, (s.lastDeliveryAt) - startAt);
  const m = measure(span);
  const sends = await stopCount();
  return {
    size,
    rate,
    inflight,
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

let _keysOpened = 0;

/**
 * Opens connections until `size` are in the room (counting the live ones: the
 * slow-consumer policy may have closed some); returns the live count.
 */
export async function grow(
  h: Harness,
  _have: number,
  size: number,
  open: { kind: ClientKind; port: number; keyPrefix: string },
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
