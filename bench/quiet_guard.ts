// Keeps other programs' load and the hypervisor's steal out of the figures:
// samples what every measured run lost to them, waits for a quiet machine
// before a run, and measures a disturbed run once more while budgets last.
import { cpuSeconds, sleep } from "./_common.ts";
import {
  ContentionMonitor,
  type MachineCpu,
  machineCpu,
  type NetCounters,
  netCounters,
  netDelta,
  procStat,
} from "./machine_cpu.ts";
import { log } from "./run_log.ts";

/** Runs disturbed by more than this many cores are measured again. */
export const DISTURBED_CORES = 0.2;

/** What a run's figures say about its machine, read by {@linkcode disturbance}. */
export interface Disturbed {
  foreignCores: number;
  machine?: { steal?: number };
}

/** How a run measured twice by {@linkcode QuietGuard.measured} was disturbed each time. */
export interface RetryNote {
  foreignCores: [number, number];
  disturbance: [number, number];
}

/** A result of {@linkcode QuietGuard.measured}: the run's own, noting a second attempt. */
export type Measured<T> = T & { retried?: RetryNote };

/** The machine's figures over one measured run, as rates; see {@linkcode QuietGuard.measureFrom}. */
export interface RunMachine {
  /** CPU of each measured process, in cores. */
  cpu: number[];
  /** CPU of the load generators together, in cores. */
  genCpu: number;
  machine: MachineCpu;
  foreignCores: number;
  net: NetCounters;
}

/**
 * Cores a measured run lost to others: other programs, or the hypervisor's
 * steal, whichever is more. Steal shows only in part as "other" (a stolen
 * CPU also stops the processes whose time would be subtracted): one run here
 * read 0.24 cores of other programs and 0.40 of steal.
 */
export function disturbance(r: Disturbed): number {
  return Math.max(r.foreignCores, stealCores(r.machine));
}

/** A run's steal (a share of all cores in `machine`) in cores, like "other". */
export function stealCores(machine?: { steal?: number }): number {
  return (machine?.steal ?? 0) * navigator.hardwareConcurrency;
}

/**
 * The contention monitor of one harness run with its budgets: 60 s of waiting
 * for quiet and 60 s of second measurements, and the run's deadline.
 *
 * @example
 * ```ts
 * import { QuietGuard } from "./quiet_guard.ts";
 * const guard = new QuietGuard(performance.now() + 60_000);
 * guard.monitor.start();
 * await guard.gate();
 * guard.monitor.stop();
 * ```
 */
export class QuietGuard {
  /** Other programs' CPU, sampled every 500 ms once started. */
  readonly monitor: ContentionMonitor = new ContentionMonitor();
  #deadline: number;
  #gateBudgetMs = 60_000;
  #retryBudgetMs = 60_000;

  /** `deadline`: the `performance.now()` past which no further run starts. */
  constructor(deadline: number) {
    this.#deadline = deadline;
  }

  /** Throws when the run's time is up, before `what` starts. */
  checkDeadline(what: string): void {
    if (this.outOfTime()) throw new Error(`Out of time before ${what}`);
  }

  /** Whether the run's deadline has passed: no further run may start. */
  outOfTime(): boolean {
    return performance.now() > this.#deadline;
  }

  /** Whether a disturbed run may be measured again: retry budget and deadline allow it. */
  mayRetry(): boolean {
    return this.#retryBudgetMs > 0 && performance.now() <= this.#deadline - 60_000;
  }

  /** Takes `ms` spent measuring again from the retry budget. */
  spendRetry(ms: number): void {
    this.#retryBudgetMs -= ms;
  }

  /**
   * Samples CPU (of `pids` and the load generators), the machine, foreign load
   * and network counters at the start of a measured run; the returned function
   * samples them again and gives each as a rate over `spanMs`.
   */
  measureFrom(
    pids: readonly number[],
    gen: { cpuSeconds(): number },
  ): (spanMs: number) => RunMachine {
    const cpu0 = pids.map(cpuSeconds);
    const g0 = gen.cpuSeconds();
    const m0 = procStat();
    const f0 = this.monitor.mark();
    const n0 = netCounters();
    return (spanMs: number) => {
      const sec = spanMs / 1000;
      return {
        cpu: pids.map((pid, i) => (cpuSeconds(pid) - cpu0[i]!) / sec),
        genCpu: (gen.cpuSeconds() - g0) / sec,
        machine: machineCpu(m0, procStat()),
        foreignCores: this.monitor.since(f0),
        net: netDelta(n0, netCounters()),
      };
    };
  }

  /**
   * After pair `label` (begun at `startMs`, `performance.now()`) was measured:
   * true when it counts. A pair either side of which lost more than
   * {@linkcode DISTURBED_CORES} is marked disturbed and measured again while
   * the retry budget lasts; once it is spent, a disturbed pair counts too.
   */
  settlePair(
    pair: { disturbance: [number, number]; disturbed?: true },
    label: string,
    startMs: number,
  ): boolean {
    const worst = Math.max(...pair.disturbance);
    if (worst <= DISTURBED_CORES) return true;
    const again = this.mayRetry();
    log(
      `  ${label}: other programs or steal took ${worst.toFixed(2)} cores; ` +
        (again ? "measuring another pair" : "no retry budget left, counted"),
    );
    if (!again) return true;
    pair.disturbed = true;
    this.spendRetry(performance.now() - startMs);
    return false;
  }

  /**
   * Runs a measurement; when other programs or the hypervisor took more than
   * 0.2 cores during it and the retry budget (60 s per harness run) allows,
   * runs it once more after the quiet gate and keeps the less disturbed result
   * (chosen by disturbance, never by its figures).
   */
  async measured<T extends Disturbed & { slowClosed?: number }>(
    what: string,
    run: () => Promise<T>,
  ): Promise<Measured<T>> {
    const first = await run();
    // A run that closed members changed the room: it is a result, not noise to retry away.
    if (
      disturbance(first) <= DISTURBED_CORES || (first.slowClosed ?? 0) > 0 || !this.mayRetry()
    ) {
      return first;
    }
    log(
      `  ${what}: other programs or steal took ${disturbance(first).toFixed(2)} cores; ` +
        `measuring again`,
    );
    const start = performance.now();
    const second = await run();
    this.spendRetry(performance.now() - start);
    const best = disturbance(second) < disturbance(first) ? second : first;
    return {
      ...best,
      // Members closed by either attempt count.
      ...(best.slowClosed !== undefined &&
        { slowClosed: (first.slowClosed ?? 0) + (second.slowClosed ?? 0) }),
      retried: {
        foreignCores: [first.foreignCores, second.foreignCores],
        disturbance: [disturbance(first), disturbance(second)],
      },
    };
  }

  /**
   * Before a measured run: when other programs used more than 0.15 cores over
   * the last second, waits for them to calm down, from a budget of 60 s for the
   * whole harness run.
   */
  async gate(): Promise<void> {
    const recent = this.monitor.recent;
    const busy = () => recent.length > 0 && Math.max(...recent) > 0.15;
    if (!busy() || this.#gateBudgetMs <= 0) return;
    const start = performance.now();
    while (busy() && performance.now() - start < this.#gateBudgetMs) await sleep(250);
    const waited = performance.now() - start;
    this.#gateBudgetMs -= waited;
    log(`  waited ${(waited / 1000).toFixed(1)} s for other programs to go quiet`);
  }

  /** Waits (bounded) until other programs use less than `max` cores; resolves with their load. */
  async waitQuiet(max = 0.2, limitMs = 60_000): Promise<number> {
    const until = performance.now() + limitMs;
    for (;;) {
      const m = this.monitor.mark();
      await sleep(2_000);
      const load = this.monitor.since(m);
      if (load <= max || performance.now() > until) return load;
      log(`  other programs use ${load.toFixed(2)} cores; waiting for a quieter machine`);
    }
  }
}
