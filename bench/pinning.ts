// --server-cpus and --gen-cpus: the servers on some cores, the load on the
// others, so that a server's figures are not the generators' leftovers (the
// 16-core device run of bench/device_workers.sh).
import type { Settings } from "./settings.ts";

/** taskset is missing, or refused a CPU list. */
export class PinningError extends Error {
  override name = "PinningError";
}

/** Runs taskset with `args`; its exit code and stderr, or null where it is not installed. */
async function _taskset(args: string[]): Promise<{ code: number; err: string } | null> {
  try {
    const o = await new Deno.Command("taskset", { args, stdout: "null", stderr: "piped" })
      .output();
    return { code: o.code, err: new TextDecoder().decode(o.stderr).trim() };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/**
 * Checks the pinning flags before anything starts and pins this process
 * (the harness, which runs the pushers) with every thread to `--gen-cpus`.
 * Children are pinned as they start (see `Child`). Throws a
 * {@linkcode PinningError} where taskset is missing or refuses a list, so a
 * run never measures unpinned servers while saying they were pinned.
 *
 * @example
 * ```ts
 * import { applyPinning } from "./pinning.ts";
 * import { parseSettings } from "./settings.ts";
 * await applyPinning(parseSettings(["--server-cpus=0", "--gen-cpus=1"]));
 * ```
 */
export async function applyPinning(s: Settings): Promise<void> {
  const lists = [["--server-cpus", s.serverCpus], ["--gen-cpus", s.genCpus]] as const;
  for (const [flag, cpus] of lists) {
    if (!cpus) continue;
    const r = await _taskset(["-c", cpus, "true"]);
    if (r === null) {
      throw new PinningError(
        `taskset not found: ${flag} runs children under taskset -c (util-linux); ` +
          `install it or drop --server-cpus/--gen-cpus`,
      );
    }
    if (r.code !== 0) throw new PinningError(`taskset refused ${flag}=${cpus}: ${r.err}`);
  }
  if (!s.genCpus) return;
  const r = await _taskset(["-a", "-p", "-c", s.genCpus, String(Deno.pid)]);
  if (r?.code !== 0) {
    throw new PinningError(`Could not pin the harness to --gen-cpus=${s.genCpus}: ${r?.err}`);
  }
}

/** "servers on CPUs 0-7; load generators and the harness's pushers on CPUs 8-15", or "none". */
export function pinningNote(s: Settings): string {
  if (!s.serverCpus && !s.genCpus) return "none";
  const on = (cpus: string) => cpus ? `CPUs ${cpus}` : "any CPU";
  return `servers on ${on(s.serverCpus)}; load generators and the harness's pushers on ` +
    on(s.genCpus);
}
