// The burst phase (issue 17, case 1): a burst of room pushes into a large
// room whose members all read promptly, on a fresh Comet with its default
// flags; every accepted push must reach every member, none closed as slow.
import { cpuSeconds, nowMs, pushBody } from "./_common.ts";
import type { Harness } from "./harness.ts";
import { HttpClient, isOk as ok } from "./http_client.ts";
import { cpuNote } from "./machine_cpu.ts";
import type { BurstPush, BurstRun } from "./records.ts";
import { log } from "./run_log.ts";
import { spawnComet, stopComet } from "./servers.ts";
import { BURST_IDLE_MS, BURST_MAX_MS, CONCURRENCY } from "./settings.ts";

/** The room of the burst phase: live://burst. */
const _BURST_ROOM = "burst";

/**
 * GET /metrics on `api`: every sample, `name{labels}` to its value; `{}`
 * when the page cannot be read.
 */
async function _cometMetrics(api: number): Promise<Record<string, number>> {
  try {
    const r = await fetch(`http://127.0.0.1:${api}/metrics`, {
      signal: AbortSignal.timeout(5_000),
    });
    const text = await r.text();
    const out: Record<string, number> = {};
    for (const l of text.split("\n")) {
      const m = /^([a-z_:][a-z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/i.exec(l);
      if (m) out[m[1]!] = Number(m[2]);
    }
    return out;
  } catch {
    return {};
  }
}

/** What one push burst got back from the API. */

/**
 * `total` room pushes of 64-byte stamped bodies into live://burst, from
 * `concurrency` keep-alive connections each sending its next push as soon as
 * the last one is answered. Nothing is retried: a refused push is counted.
 */
async function _pushBurst(apiPort: number, total: number, concurrency: number): Promise<BurstPush> {
  const target = `/goim/push/room?operation=1000&type=live&room=${_BURST_ROOM}`;
  const clients = await Promise.all(
    Array.from({ length: concurrency }, () => HttpClient.connect(apiPort)),
  );
  const r: BurstPush = {
    accepted: 0,
    refused429: 0,
    refused503: 0,
    otherFailed: 0,
    errors: 0,
    firstRefusal: null,
    elapsedMs: 0,
    startAt: nowMs(),
  };
  let next = 0;
  const start = performance.now();
  await Promise.all(clients.map(async (first) => {
    let c: HttpClient | undefined = first;
    while (next < total) {
      const id = next++;
      try {
        c ??= await HttpClient.connect(apiPort);
        const res = await c.post(target, pushBody(id));
        if (ok(res)) {
          r.accepted++;
          continue;
        }
        if (res.status === 429) r.refused429++;
        else if (res.status === 503) r.refused503++;
        else r.otherFailed++;
        r.firstRefusal ??= `${res.status} ${new TextDecoder().decode(res.body).slice(0, 200)}`;
      } catch (err) {
        r.errors++;
        r.firstRefusal ??= String((err as Error).message ?? err).slice(0, 200);
        c?.close();
        c = undefined;
      }
    }
    c?.close();
  }));
  r.elapsedMs = performance.now() - start;
  return r;
}

/** The difference of the samples named `name` (no labels) between two /metrics reads. */
function _metricDelta(
  a: Record<string, number>,
  b: Record<string, number>,
  name: string,
): number | null {
  return name in b ? b[name]! - (a[name] ?? 0) : null;
}

/** One burst over `kind` on a fresh Comet with its default flags (per-IP limits off). */
async function _burstRun(h: Harness, kind: "tcp" | "ws"): Promise<BurstRun> {
  const { gen, guard, settings: cfg } = h;
  const phase = `burst-${kind}`;
  guard.checkDeadline(`${kind} burst`);
  const comet = await spawnComet(h, phase, false, [], true);
  try {
    const opened = await gen.open({
      kind,
      port: kind === "tcp" ? comet.tcp : comet.ws,
      count: cfg.burstMembers,
      room: `live://${_BURST_ROOM}`,
      keyPrefix: `burst${kind}`,
      concurrency: CONCURRENCY,
      bufSize: cfg.clientBuf,
    }, 120_000);
    if (opened.failed > 0) {
      log(`  ${opened.failed} connections failed: ${opened.errors.join("; ")}`);
    }
    await guard.gate();
    const m0 = await _cometMetrics(comet.api);
    await gen.reset();
    const members = (await gen.stats()).live;
    const measure = guard.measureFrom([comet.child.pid], gen);
    const d0 = cpuSeconds(Deno.pid);
    const push = await _pushBurst(comet.api, cfg.burstPushes, cfg.pushers);
    const d1 = cpuSeconds(Deno.pid);
    const expected = push.accepted * members;
    const s = await gen.quiet(
      { idleMs: BURST_IDLE_MS, maxMs: BURST_MAX_MS, perMember: push.accepted },
      BURST_MAX_MS + 30_000,
    );
    const durationMs = Math.max(push.elapsedMs, s.lastDeliveryAt - push.startAt);
    const m = measure(durationMs);
    const m1 = await _cometMetrics(comet.api);
    const caps = Object.keys(m1).filter((k) => k.startsWith("comet_pushes_refused_total{"));
    const { startAt: _s, elapsedMs: _e, ...answers } = push;
    return {
      kind,
      flags: comet.flags,
      members,
      membersAfter: s.live,
      failedToOpen: opened.failed,
      pushes: cfg.burstPushes,
      ...answers,
      expected,
      received: s.deliveries,
      lost: expected - s.deliveries,
      slowClosed: _metricDelta(m0, m1, "comet_slow_closed_total"),
      refusedByCap: caps.length
        ? Object.fromEntries(
          caps.map((k) => [/kind="([^"]*)"/.exec(k)?.[1] ?? k, m1[k]! - (m0[k] ?? 0)]),
        )
        : null,
      dropped: _metricDelta(m0, m1, "comet_dropped_total"),
      disconnects: s.disconnects,
      closed: s.closed,
      pushMs: push.elapsedMs,
      durationMs,
      pushesPerSec: ((cfg.burstPushes - push.errors) / push.elapsedMs) * 1000,
      acceptedPerSec: (push.accepted / push.elapsedMs) * 1000,
      deliveriesPerSec: (s.deliveries / durationMs) * 1000,
      latency: s.latency,
      serverCpu: m.cpu[0]!,
      genCpu: m.genCpu,
      pusherCpu: (d1 - d0) / (push.elapsedMs / 1000),
      machine: m.machine,
      foreignCores: m.foreignCores,
      net: m.net,
      timeline: s.timeline,
    };
  } finally {
    await gen.closeAll().catch(() => {});
    await stopComet(cfg, comet, phase);
  }
}

/**
 * Issue 17, case 1: a burst of room pushes into a large room whose members
 * all read promptly. Not measured again when disturbed: what it holds to a
 * target are counts (lost deliveries, members closed), and a disturbed run
 * only makes the test harder.
 */
export async function burstPhase(h: Harness): Promise<void> {
  const cfg = h.settings;
  log(
    `comet burst: ${cfg.burstPushes} room pushes from ${cfg.pushers} keep-alive connections as fast ` +
      `as answered, ${cfg.burstMembers} members (${
        cfg.burstKinds.join(", then ")
      }), default flags` +
      (cfg.cometFlags.length ? ` + ${cfg.cometFlags.join(" ")}` : ""),
  );
  let failure: unknown;
  for (const kind of cfg.burstKinds) {
    try {
      const r = await _burstRun(h, kind);
      h.results.comet[`burst_${kind}`] = r;
      const refused = r.refused429 + r.refused503 + r.otherFailed + r.errors;
      log(
        `  ${kind}: ${r.members} members; ${r.accepted} of ${r.pushes} pushes accepted` +
          (refused
            ? ` (${r.refused429} refused 429, ${r.refused503} 503, ${r.otherFailed} other, ` +
              `${r.errors} errors; first: ${r.firstRefusal})`
            : "") +
          `; ${r.received} of ${r.expected} delivered, lost ${r.lost}; ` +
          `${r.slowClosed ?? "n/a"} closed as slow (${r.disconnects} op 6 seen, ` +
          `${r.closed} connections closed); ${(r.durationMs / 1000).toFixed(2)} s to the ` +
          `last delivery, ${r.pushesPerSec.toFixed(0)} pushes/s answered in ` +
          `${r.pushMs.toFixed(0)} ms; p50 ${r.latency.p50} p99 ${r.latency.p99} ms; ` +
          `pusher cpu ${r.pusherCpu.toFixed(2)}, ${cpuNote(r)}`,
      );
    } catch (err) {
      log(`  ${kind} burst failed: ${(err as Error).message.slice(0, 500)}`);
      h.results.comet[`burst_${kind}`] = {
        error: String((err as Error).message ?? err).slice(0, 2000),
      };
      failure ??= err;
    }
  }
  if (failure !== undefined) throw failure;
}
