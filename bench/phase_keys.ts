// The single-key push phase: pushes to one connection each, round-robin over
// KEY_CONNS keys, from KEY_WORKERS keep-alive API connections. Runs inside
// the TCP fan-out phase, on its Comet.
import { cpuSeconds } from "./_common.ts";
import type { Harness } from "./harness.ts";
import { pushKeys } from "./pushers.ts";
import { log } from "./run_log.ts";
import type { CometProc } from "./servers.ts";
import { CONCURRENCY, KEY_CONNS, KEY_WORKERS } from "./settings.ts";

/** Opens the key connections into `comet`, pushes to their keys, and records `push_keys`. */
export async function keysPhase(h: Harness, comet: CometProc): Promise<void> {
  const { gen, guard } = h;
  guard.checkDeadline("push keys");
  log(`comet: single-key pushes, ${KEY_WORKERS} keep-alive connections, ${KEY_CONNS} keys`);
  const r = await gen.open({
    kind: "tcp",
    port: comet.tcp,
    count: KEY_CONNS,
    room: "live://keys",
    keyPrefix: "k",
    concurrency: CONCURRENCY,
  }, 60_000);
  await guard.gate();
  await gen.reset();
  const keys = Array.from({ length: r.opened }, (_, i) => `k${i}`);
  const cpu0 = cpuSeconds(comet.child.pid);
  const d0 = cpuSeconds(Deno.pid);
  const pk = await pushKeys(comet.api, h.settings.keysMs, KEY_WORKERS, keys);
  const d1 = cpuSeconds(Deno.pid);
  const s = await gen.quiet({ idleMs: 300, maxMs: 10_000, total: pk.ok });
  const cpu1 = cpuSeconds(comet.child.pid);
  const result = {
    ...pk,
    deliveries: s.deliveries,
    lost: pk.ok - s.deliveries,
    latency: s.latency,
    serverCpu: (cpu1 - cpu0) / (pk.elapsedMs / 1000),
    pusherCpu: (d1 - d0) / (pk.elapsedMs / 1000),
  };
  h.results.comet.push_keys = result;
  log(
    `  ${pk.perSec.toFixed(0)} pushes/s, ${s.deliveries} delivered, lost ${pk.ok - s.deliveries}` +
      `, server cpu ${result.serverCpu.toFixed(2)}` +
      `, pusher cpu ${result.pusherCpu.toFixed(2)}`,
  );
}
