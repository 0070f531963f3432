// A bench run's results.json before its phases: when, where and what it measures.
import { BODY, readProc } from "./_common.ts";
import { ROOT } from "./child.ts";
import type { MachineInfo, Results, SourceState } from "./records.ts";
import { BURST_IDLE_MS, CONCURRENCY, QUEUE, type Settings } from "./settings.ts";

/**
 * The results of a run that has not measured anything yet.
 *
 * @example
 * ```ts
 * import { createResults } from "./results.ts";
 * import { parseSettings } from "./settings.ts";
 * const results = createResults(parseSettings(["--quick"]));
 * console.log(results.settings.roomSizes); // [100, 1000]
 * ```
 */
export function createResults(s: Settings): Results {
  return {
    date: new Date().toISOString(),
    deno: Deno.version,
    machine: _machine(),
    settings: {
      memConns: s.memConns,
      roomSizes: s.sizes,
      saturationMs: s.runMs,
      latencyMs: s.latMs,
      pusherConcurrency: s.pushers,
      connectConcurrency: CONCURRENCY,
      queue: QUEUE,
      bodyBytes: BODY,
      exposeGc: s.exposeGc,
      quick: s.quick,
      clusterMembers: s.clusterMembers,
      clusterMs: s.clusterMs,
      gens: s.gens,
      clientBuf: s.clientBuf,
      baselineInflight: s.baseInflight,
      burstMembers: s.burstMembers,
      burstPushes: s.burstPushes,
      burstIdleMs: BURST_IDLE_MS,
      workersN: s.workersN,
      workersPairs: s.workersPairs,
      serverCpus: s.serverCpus || null,
      genCpus: s.genCpus || null,
      maxRunS: s.maxRunS,
    },
    micro: null,
    baseline: {},
    comet: {},
  };
}

function _machine(): MachineInfo {
  const mem = readProc("/proc/meminfo");
  const cpu = readProc("/proc/cpuinfo");
  return {
    nproc: navigator.hardwareConcurrency,
    memTotalKiB: Number(/MemTotal:\s+(\d+)/.exec(mem)?.[1] ?? 0),
    cpu: /model name\s*:\s*(.*)/.exec(cpu)?.[1] ?? "unknown",
    kernel: readProc("/proc/sys/kernel/osrelease").trim(),
    openFilesLimit: _nofile(),
  };
}

function _nofile(): number | null {
  try {
    const limits = readProc(`/proc/${Deno.pid}/limits`);
    return Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? NaN);
  } catch {
    return null;
  }
}

/** The commit and how many files under src/ (and mod.ts) differ from it. */
export async function sourceState(): Promise<SourceState> {
  const git = async (...args: string[]) => {
    try {
      const o = await new Deno.Command("git", {
        args,
        cwd: ROOT.pathname,
        stdout: "piped",
        stderr: "null",
      })
        .output();
      return new TextDecoder().decode(o.stdout).trim();
    } catch {
      return "";
    }
  };
  const dirty = (await git("status", "--porcelain", "src", "mod.ts")).split("\n").filter(Boolean);
  return { commit: await git("rev-parse", "--short", "HEAD"), dirtyFiles: dirty.length };
}
