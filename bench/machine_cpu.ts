// What the machine's CPUs and network did during a measured run: the cores
// busy, softirq and hypervisor steal (/proc/stat), other programs' CPU (the
// contention monitor), kernel TCP counters, and the server's socket writes.
import { cpuSeconds, readProc, sleep } from "./_common.ts";

/** Share of all cores, 0..1, over a run; see {@linkcode machineCpu}. */
export interface MachineCpu {
  busy: number;
  softirq: number;
  system: number;
  steal: number;
}

/** Kernel counters (drops, retransmits, wake-ups, context switches) by name. */
export type NetCounters = Record<string, number>;

/** Jiffies per state summed over all CPUs (/proc/stat "cpu" line). */
export function procStat(): number[] {
  const line = readProc("/proc/stat").split("\n")[0]!;
  return line.trim().split(/\s+/).slice(1, 9).map(Number);
}

/**
 * Share of all cores, 0..1: busy (everything but idle and iowait), softirq
 * alone, and steal: time the hypervisor gave this VM's CPUs to someone else,
 * which slows every process here without showing in any of them (it counts
 * in "other" too). Measured here: 0 to 3% most of the time, 23 to 27% of all
 * cores in some minutes, when every per-handshake cost rose by half.
 */
export function machineCpu(a: number[], b: number[]): MachineCpu {
  const d = b.map((x, i) => x - a[i]!);
  const total = d.reduce((n, x) => n + x, 0) || 1;
  const idle = d[3]! + d[4]!;
  return {
    busy: 1 - idle / total,
    softirq: d[6]! / total,
    system: d[2]! / total,
    steal: d[7]! / total,
  };
}

// ------------------------------------------------------------ kernel stats --

/**
 * Loopback and TCP counters that explain latency tails: packets the kernel
 * dropped from its receive backlog (netdev_max_backlog), retransmitted
 * segments, retransmission timeouts, tail-loss probes, zero-window adverts.
 */
export function netCounters(): NetCounters {
  const out: NetCounters = { softnetDrops: 0 };
  for (const l of readProc("/proc/net/softnet_stat").trim().split("\n")) {
    out.softnetDrops! += parseInt(l.trim().split(/\s+/)[1]!, 16);
  }
  // Cross-CPU wake-ups (rescheduling and function-call interrupts, each a VM exit on a
  // hypervisor) and context switches: what a socket write costs beyond its own work.
  for (const l of readProc("/proc/interrupts").split("\n")) {
    const m = /^\s*(RES|CAL):((?:\s+\d+)+)/.exec(l);
    if (m) out[m[1]!] = m[2]!.trim().split(/\s+/).reduce((a, v) => a + Number(v), 0);
  }
  const ctxt = /^ctxt (\d+)/m.exec(readProc("/proc/stat"));
  if (ctxt) out.ctxt = Number(ctxt[1]);
  const want = ["RetransSegs", "TCPTimeouts", "TCPLossProbes", "TCPToZeroWindowAdv"];
  for (const file of ["/proc/net/snmp", "/proc/net/netstat"]) {
    const lines = readProc(file).trim().split("\n");
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const h = lines[i]!.split(/\s+/), v = lines[i + 1]!.split(/\s+/);
      h.forEach((name, j) => {
        if (want.includes(name)) out[name] = Number(v[j]);
      });
    }
  }
  return out;
}

/** The change of every counter from `a` to `b`. */
export function netDelta(a: NetCounters, b: NetCounters): NetCounters {
  return Object.fromEntries(Object.keys(b).map((k) => [k, b[k]! - (a[k] ?? 0)]));
}

/** "net: 0 drops, 3 retrans, 0 RTOs" for a log line. */
export function netNote(n: NetCounters): string {
  return `net: ${n.softnetDrops} drops, ${n.RetransSegs} retrans, ${n.TCPTimeouts} RTOs`;
}

// --------------------------------------------------------------- contention --

/** Our processes (driver and children); everything else busy on the box is foreign load. */
export const ourPids: Set<number> = new Set<number>([Deno.pid]);

function _procJiffies(pid: number): number | null {
  try {
    return cpuSeconds(pid) * 100;
  } catch {
    return null;
  }
}

/**
 * Samples every 500 ms: machine busy jiffies (minus softirq, which no process
 * is charged for) minus what our processes used. The running total of that
 * difference is the CPU other programs on this machine took from the run.
 */
export class ContentionMonitor {
  /** Foreign cores in the last two sampling intervals. */
  recent: number[] = [];
  foreign = 0;
  elapsed = 0;
  #last = procStat();
  #lastAt = performance.now();
  #per = new Map<number, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

  start(): void {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 500);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #sample(): void {
    const now = procStat();
    const at = performance.now();
    let ours = 0;
    for (const pid of ourPids) {
      const j = _procJiffies(pid);
      if (j === null) {
        ourPids.delete(pid);
        this.#per.delete(pid);
        continue;
      }
      const prev = this.#per.get(pid);
      if (prev !== undefined) ours += j - prev;
      this.#per.set(pid, j);
    }
    const d = now.map((x, i) => x - this.#last[i]!);
    const busy = d.reduce((n, x) => n + x, 0) - d[3]! - d[4]! - d[6]!;
    this.foreign += Math.max(0, busy - ours);
    this.recent.push(Math.max(0, busy - ours) / 100 / ((at - this.#lastAt) / 1000));
    if (this.recent.length > 2) this.recent.shift();
    this.elapsed += at - this.#lastAt;
    this.#last = now;
    this.#lastAt = at;
  }

  /** Snapshot for {@linkcode ContentionMonitor.since}. */
  mark(): { foreign: number; elapsed: number } {
    return { foreign: this.foreign, elapsed: this.elapsed };
  }

  /** Average foreign load in cores since `m`. */
  since(m: { foreign: number; elapsed: number }): number {
    const ms = this.elapsed - m.elapsed;
    return ms > 0 ? (this.foreign - m.foreign) / 100 / (ms / 1000) : 0;
  }
}

// ------------------------------------------------------------ write count --

let _perfWorks: boolean | undefined;

/**
 * Counts a process's sendto(2) calls (Deno writes sockets with sendto) with
 * `perf stat` on the syscall tracepoint, if perf is there and allowed. The
 * returned function stops counting and resolves with the count, or null.
 */
export async function countSendto(pid: number): Promise<() => Promise<number | null>> {
  if (_perfWorks === false) return () => Promise.resolve(null);
  let proc: Deno.ChildProcess;
  try {
    proc = new Deno.Command("perf", {
      args: ["stat", "-x,", "-e", "syscalls:sys_enter_sendto", "-p", String(pid)],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch {
    _perfWorks = false;
    return () => Promise.resolve(null);
  }
  ourPids.add(proc.pid);
  await sleep(300); // perf attaches
  return async () => {
    try {
      proc.kill("SIGINT");
    } catch {
      // exited already (not allowed, or the process is gone)
    }
    const out = await proc.output();
    const m = /^(\d+),[^\n]*syscalls:sys_enter_sendto/m.exec(new TextDecoder().decode(out.stderr));
    _perfWorks = m !== null;
    return m ? Number(m[1]) : null;
  };
}

/** "server 0.93 gen 0.85 machine 0.97 (softirq 0.12, steal 0.00) other 0.01" for a log line. */
export function cpuNote(r: {
  serverCpu: number;
  genCpu?: number;
  machine: { busy: number; softirq: number; steal?: number };
  foreignCores: number;
  net?: NetCounters;
}): string {
  return (r.net ? netNote(r.net) + "; " : "") + `cpu: server ${r.serverCpu.toFixed(2)}` +
    (r.genCpu === undefined ? "" : ` gen ${r.genCpu.toFixed(2)}`) +
    ` machine ${r.machine.busy.toFixed(2)} (softirq ${r.machine.softirq.toFixed(2)}, steal ${
      (r.machine.steal ?? 0).toFixed(2)
    })` +
    ` other ${r.foreignCores.toFixed(2)} cores`;
}
