// The harness's progress lines on stderr, each stamped with the seconds since it started.

const T0 = performance.now();

/** Seconds since the harness started. */
export function elapsedSec(): number {
  return (performance.now() - T0) / 1000;
}

/**
 * Prints one progress line on stderr, `[  12.3s] msg`.
 *
 * @example
 * ```ts
 * import { log } from "./run_log.ts";
 * log("baseline: plain Deno TCP server, memory and connect rate");
 * ```
 */
export function log(msg: string): void {
  const t = elapsedSec().toFixed(1).padStart(6);
  console.error(`[${t}s] ${msg}`);
}
