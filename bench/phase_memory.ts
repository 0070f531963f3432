// The memory and handshake phases: idle connections opened into a fresh
// server, its RSS and V8 heap per connection after a full GC, and how fast
// it took them. Comet over TCP or WebSocket, Comet behind Deno.serve, and
// the plain-Deno baseline (the runtime's floor).
import { rssBytes, sleep } from "./_common.ts";
import { Child, ROOT, rootPath, RUN } from "./child.ts";
import type { Harness } from "./harness.ts";
import { cpuNote } from "./machine_cpu.ts";
import type { MemUsage, NoProtocol, OpenArgs, ServeHandlerProtocol } from "./messages.ts";
import type { MemResult } from "./records.ts";
import { log } from "./run_log.ts";
import { spawnBaseline, spawnComet, stopComet, v8flags } from "./servers.ts";
import { CONCURRENCY } from "./settings.ts";

/** RSS twice after a GC (2 s and 3 s later) and the memory a second GC reports. */
async function _settle(
  pid: number,
  gc: () => Promise<MemUsage | null>,
): Promise<{ rss: number[]; usage: MemUsage | null }> {
  await gc();
  await sleep(2_000);
  const a = rssBytes(pid);
  await sleep(1_000);
  const usage = await gc();
  await sleep(300);
  const b = rssBytes(pid);
  return { rss: [a, b], usage };
}

/** Runs a GC in the Comet child (bench/comet_gc.ts) and reads the memory line it prints. */
export function cometGc(c: Child<NoProtocol>): () => Promise<MemUsage | null> {
  return async () => {
    const before = Date.now();
    c.proc.kill("SIGUSR2");
    try {
      const m = await c.waitFor((l, s) => {
        if (s !== "err") return null;
        const x = /BENCH_MEMORY (\{.*"at":(\d+)\})/.exec(l);
        return x && Number(x[2]) >= before - 5 ? x : null;
      }, 5_000);
      return JSON.parse(m[1]!) as MemUsage;
    } catch {
      return null;
    }
  };
}

/** "V8 heap used 1.20 KiB, external 0.10 KiB" per connection, for a log line. */
export function heapNote(m: MemResult): string {
  if (m.perConnHeapUsed === null) return "heap n/a";
  return `V8 heap used ${(m.perConnHeapUsed / 1024).toFixed(2)} KiB, external ${
    ((m.perConnExternal ?? 0) / 1024).toFixed(2)
  } KiB`;
}

/**
 * Read buffer of each idle client of the memory and handshake phase: it gets
 * a 16-byte reply (over WebSocket after a short upgrade head) and nothing
 * more, and the generator grows a buffer for anything larger. At 4 KiB the
 * generators held 60 MB of buffers per phase that only ever took 16 bytes,
 * allocated on the cores the server shares.
 */
const _MEM_CLIENT_BUF = 256;

/**
 * Opens `open.count` idle connections into the server `pid` after a warm-up,
 * and measures its memory per connection (after a GC through `gc`) and how
 * fast it took them.
 */
export async function measureMemory(
  h: Harness,
  pid: number,
  gc: () => Promise<MemUsage | null>,
  open: OpenArgs,
): Promise<MemResult> {
  const { gen, guard, settings: s } = h;
  // Warm-up: JIT both sides and let the server allocate its one-off structures.
  await gen.open({
    concurrency: CONCURRENCY,
    bufSize: _MEM_CLIENT_BUF,
    ...open,
    count: s.warmup,
    keyPrefix: "warm",
  }, 60_000);
  await gen.closeAll();
  await sleep(500);
  await gc();
  await sleep(1_000);
  await guard.gate();
  const usageBefore = await gc();
  await sleep(300);
  const rssBefore = rssBytes(pid);
  const measure = guard.measureFrom([pid], gen);
  const r = await gen.open(
    { concurrency: CONCURRENCY, bufSize: _MEM_CLIENT_BUF, ...open },
    90_000,
  );
  const m = measure(r.elapsedMs);
  const { rss: rssAfter, usage: usageAfter } = await _settle(pid, gc);
  const conns = r.opened;
  const per = (k: "heapUsed" | "heapTotal" | "external") =>
    usageBefore && usageAfter ? (usageAfter[k] - usageBefore[k]) / Math.max(1, conns) : null;
  return {
    conns,
    failed: r.failed,
    rssBefore,
    rssAfter,
    perConnBytes: (rssAfter[1]! - rssBefore) / Math.max(1, conns),
    perConnHeapUsed: per("heapUsed"),
    perConnHeapTotal: per("heapTotal"),
    perConnExternal: per("external"),
    usageBefore,
    usageAfter,
    handshakeMs: r.elapsedMs,
    handshakesPerSec: (conns / r.elapsedMs) * 1000,
    serverCpu: m.cpu[0]!,
    genCpu: m.genCpu,
    machine: m.machine,
    foreignCores: m.foreignCores,
    errors: r.errors,
  };
}

/** The plain-Deno baseline's RSS per idle connection (the runtime's floor) and connect rate. */
export async function baselineMemPhase(h: Harness): Promise<void> {
  const { gen, guard, settings: s } = h;
  log("baseline: plain Deno TCP server, memory and connect rate");
  log(`  ${s.memConns} idle connections (connect + 16-byte reply, ${CONCURRENCY} in flight)`);
  // A fresh server per attempt: a second run into the same process would
  // find its heap grown by the first and measure less.
  h.results.baseline.memory = await guard.measured("baseline memory", async () => {
    const { child: base, port } = await spawnBaseline(s, "baseline-mem");
    const gc = async () => (await base.call("gc", {})).memory;
    try {
      const mem = await measureMemory(h, base.pid, gc, {
        kind: "raw",
        port,
        count: s.memConns,
        keyPrefix: "m",
      });
      log(
        `  RSS/conn ${(mem.perConnBytes / 1024).toFixed(2)} KiB (${heapNote(mem)}), ` +
          `${mem.handshakesPerSec.toFixed(0)} connect+reply/s, ${cpuNote(mem)}`,
      );
      await gen.closeAll();
      return mem;
    } finally {
      await base.stop("SIGTERM", 3_000);
    }
  });
}

/** Comet's RSS per idle connection over `kind`, and its connect+auth rate. */
export async function memPhase(h: Harness, kind: "tcp" | "ws", phase: string): Promise<void> {
  const { gen, guard, settings: s } = h;
  log(`comet: ${s.memConns} idle ${kind} connections`);
  // A fresh server per attempt, as for the baseline.
  h.results.comet[`memory_${kind}`] = await guard.measured(`comet memory ${kind}`, async () => {
    const comet = await spawnComet(h, phase, true);
    try {
      const mem = await measureMemory(h, comet.child.pid, cometGc(comet.child), {
        kind,
        port: kind === "tcp" ? comet.tcp : comet.ws,
        count: s.memConns,
        keyPrefix: kind === "tcp" ? "mt" : "mw",
      });
      log(
        `  RSS/conn ${(mem.perConnBytes / 1024).toFixed(2)} KiB (${heapNote(mem)}), ` +
          `${mem.handshakesPerSec.toFixed(0)} connect+auth/s (${mem.failed} failed), ` +
          cpuNote(mem),
      );
      await gen.closeAll();
      return mem;
    } finally {
      await stopComet(s, comet, phase);
    }
  });
}

/** The Deno.serve WebSocket handler, if the project has one yet. */
export async function memServePhase(h: Harness): Promise<void> {
  const { gen, settings: s } = h;
  let present = false;
  try {
    Deno.statSync(rootPath("src/transport/socket_wire.ts"));
    const mod = await import(new URL("mod.ts", ROOT).href) as Record<string, unknown>;
    present = typeof mod.createCometHandler === "function";
  } catch {
    present = false;
  }
  if (!present) {
    log("Deno.serve WebSocket handler not present (createCometHandler): skipped");
    h.results.comet.memory_serve = { skipped: "handler not present" };
    return;
  }
  log(`comet: ${s.memConns} idle WebSocket connections through Deno.serve + createCometHandler`);
  const child = new Child<ServeHandlerProtocol>("comet(Deno.serve)", [
    ...RUN,
    ...v8flags(s, s.exposeGc, false),
    rootPath("bench/serve_handler_server.ts"),
  ], s.serverCpus);
  try {
    const m = await child.waitFor((l, s) => s === "out" ? /"port":(\d+)/.exec(l) : null);
    const mem = await measureMemory(
      h,
      child.pid,
      async () => (await child.call("gc", {})).memory,
      { kind: "ws", port: Number(m[1]), count: s.memConns, keyPrefix: "ms" },
    );
    h.results.comet.memory_serve = mem;
    log(
      `  RSS/conn ${(mem.perConnBytes / 1024).toFixed(2)} KiB (${heapNote(mem)}), ${cpuNote(mem)}`,
    );
    await gen.closeAll();
  } catch (err) {
    log(`  Deno.serve phase failed: ${(err as Error).message.slice(0, 500)}`);
    h.results.comet.memory_serve = { error: (err as Error).message.slice(0, 2000) };
    await gen.closeAll().catch(() => {});
  } finally {
    await child.stop("SIGTERM", 3_000);
  }
}
