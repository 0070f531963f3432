// What every phase of a bench run works with: its settings, the results it
// fills in, the load generators and the quiet guard.
import type { LoadGens } from "./load_gens.ts";
import type { QuietGuard } from "./quiet_guard.ts";
import type { Results } from "./records.ts";
import type { Settings } from "./settings.ts";

/** One `deno task bench` run, handed to every phase. */
export interface Harness {
  /** From the flags. */
  readonly settings: Settings;
  /** Filled in phase by phase; written to bench/out/results.json at the end. */
  readonly results: Results;
  /** The load generators, shared by every phase. */
  readonly gen: LoadGens;
  /** Contention sampling, quiet gate, second measurements and the deadline. */
  readonly guard: QuietGuard;
}
