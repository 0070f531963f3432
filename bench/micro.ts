// The Deno.bench micro benchmarks (bench/micro_bench.ts) run by the harness, and their table.
import { ROOT, rootPath } from "./child.ts";
import type { MicroResult, Results } from "./records.ts";
import { log } from "./run_log.ts";

/** One bench of `deno bench --json`, as far as the harness reads it. */
interface _BenchJson {
  group: string | null;
  name: string;
  results: { ok?: Record<string, unknown> }[];
}

/**
 * Runs `deno bench --json bench/micro_bench.ts` and records each bench's
 * figures in `results.micro`; logs and records nothing when it fails.
 */
export async function runMicro(results: Results): Promise<void> {
  log("micro benchmarks (deno bench)");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["bench", "--json", rootPath("bench/micro_bench.ts")],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    log(`micro benchmarks failed:\n${new TextDecoder().decode(out.stderr)}`);
    return;
  }
  const json = JSON.parse(new TextDecoder().decode(out.stdout)) as { benches: _BenchJson[] };
  results.micro = json.benches.map((b) =>
    ({
      group: b.group,
      name: b.name,
      ...(b.results[0]?.ok ?? { error: JSON.stringify(b.results[0]) }),
    }) as MicroResult
  );
}

/** The micro benchmarks as printed lines, or "" when none ran. */
export function microTable(results: Results): string {
  if (!results.micro) return "";
  const fmt = (ns: number) =>
    ns >= 1e6
      ? `${(ns / 1e6).toFixed(2)} ms`
      : ns >= 1e3
      ? `${(ns / 1e3).toFixed(1)} us`
      : `${ns.toFixed(1)} ns`;
  const lines = ["Micro benchmarks (deno bench, time per iteration):"];
  for (const m of results.micro) {
    lines.push(
      `  ${m.name.padEnd(66)} avg ${fmt(m.avg).padStart(10)}  p75 ${fmt(m.p75).padStart(10)}` +
        `  p99 ${fmt(m.p99).padStart(10)}`,
    );
  }
  return lines.join("\n");
}
