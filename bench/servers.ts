// The servers a phase measures, as child processes: the real Comet command
// and the plain-Deno baseline server (bench/baseline_server.ts).
import { Child, OUT, ROOT, rootPath, RUN } from "./child.ts";
import type { Harness } from "./harness.ts";
import type { BaselineProtocol, NoProtocol } from "./messages.ts";
import { log } from "./run_log.ts";
import { QUEUE, type Settings } from "./settings.ts";

/** Where --profile writes its .cpuprofile files. */
const _PROF_DIR = new URL("prof/", OUT).pathname;

/** The --v8-flags of a server: --expose-gc, --trace-gc and --server-v8-flags as asked. */
export function v8flags(s: Settings, gc: boolean, traceGc: boolean): string[] {
  const f = [
    ...(gc ? ["--expose-gc"] : []),
    ...(traceGc ? ["--trace-gc"] : []),
    ...s.serverV8Flags,
  ];
  return f.length ? [`--v8-flags=${f.join(",")}`] : [];
}

/** The plain-Deno baseline server and its port. */
export interface BaselineProc {
  child: Child<BaselineProtocol>;
  port: number;
}

/** Starts the plain-Deno baseline server for `phase` (profiled when --profile names it). */
export async function spawnBaseline(s: Settings, phase: string): Promise<BaselineProc> {
  const prof = s.profile === phase
    ? ["--cpu-prof", `--cpu-prof-dir=${_PROF_DIR}`, `--cpu-prof-name=baseline-${phase}.cpuprofile`]
    : [];
  const child = new Child<BaselineProtocol>("baseline", [
    ...RUN,
    ...v8flags(s, s.exposeGc, false),
    ...prof,
    rootPath("bench/baseline_server.ts"),
  ], s.serverCpus);
  const m = await child.waitFor((l, s) => s === "out" ? /"port":(\d+)/.exec(l) : null);
  return { child, port: Number(m[1]) };
}

let _limitFlags: string[] | undefined;
let _help: Promise<string> | undefined;

/** The CLI's --help text, read once. */
function _cometHelp(): Promise<string> {
  return _help ??= new Deno.Command(Deno.execPath(), {
    args: [...RUN, rootPath("src/cli.ts"), "--help"],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "null",
  }).output().then((out) => new TextDecoder().decode(out.stdout));
}

/** Whether this version of the CLI has `--workers` (issue 19). */
export async function cometHasWorkers(): Promise<boolean> {
  return (await _cometHelp()).includes("--workers ");
}

/**
 * Flags that lift the CLI's connection limits, where this version of the CLI
 * has them: every load connection comes from 127.0.0.1, so per-IP limits
 * (connections, connect rate) would measure the limiter, not the server.
 */
async function _cometLimitFlags(h: Harness): Promise<string[]> {
  if (_limitFlags) return _limitFlags;
  const help = await _cometHelp();
  const limitFlags = [
    "max-connections",
    "max-connections-per-ip",
    "connect-rate",
    "max-auth-attempts",
  ]
    .filter((f) => help.includes(`--${f} `)).flatMap((f) => [`--${f}`, "0"]);
  h.results.settings.cometLimitFlags = [...limitFlags, ...h.settings.cometFlags];
  h.results.settings.serverV8Flags = h.settings.serverV8Flags;
  _limitFlags = limitFlags;
  return limitFlags;
}

/** {@linkcode _cometLimitFlags} less --max-connections: the per-IP limits alone. */
async function _cometPerIpLimitFlags(h: Harness): Promise<string[]> {
  const all = await _cometLimitFlags(h);
  const out: string[] = [];
  for (let i = 0; i + 1 < all.length; i += 2) {
    if (all[i] !== "--max-connections") out.push(all[i]!, all[i + 1]!);
  }
  return out;
}
/** A running Comet command and its ports. */
export interface CometProc {
  child: Child<NoProtocol>;
  tcp: number;
  ws: number;
  api: number;
  /** The command's flags after its listen addresses and log level. */
  flags: string[];
  /** Its workers (`--workers`); 1 where the CLI has no such flag. */
  workers: number;
}

/**
 * Starts the real Comet CLI. With `gcHook` it runs through bench/comet_gc.ts,
 * which calls the same `main` and adds a SIGUSR2 handler that runs a full GC
 * (only with --expose-gc) so memory can be sampled after a collection. With
 * `defaults`, the command keeps its own heartbeat timeout, queue and
 * connection cap, and only the per-IP limits are lifted. It runs `workers`
 * workers where the CLI has `--workers` (pinned to 1 by default, so that
 * figures keep their meaning whatever the command's own default); {@linkcode RUN}
 * carries the `--unstable-net` that workers sharing the ports need.
 */
export async function spawnComet(
  h: Harness,
  phase: string,
  gcHook: boolean,
  extra: string[] = [],
  defaults = false,
  workers = 1,
): Promise<CometProc> {
  const s = h.settings;
  const prof = s.profile === phase
    ? ["--cpu-prof", `--cpu-prof-dir=${_PROF_DIR}`, `--cpu-prof-name=comet-${phase}.cpuprofile`]
    : [];
  const flags = [
    ...(defaults ? [] : ["--heartbeat-timeout", "10m", "--queue", String(QUEUE)]),
    ...(defaults ? await _cometPerIpLimitFlags(h) : await _cometLimitFlags(h)),
    ...s.cometFlags,
    ...extra,
  ];
  const pinned = await cometHasWorkers();
  if (!pinned && workers !== 1) {
    throw new Error(`Comet has no --workers flag: cannot run ${workers} workers`);
  }
  const args = [
    ...RUN,
    ...v8flags(s, gcHook && s.exposeGc, s.traceGc === phase),
    ...prof,
    gcHook ? rootPath("bench/comet_gc.ts") : rootPath("src/cli.ts"),
    "--tcp",
    "127.0.0.1:0",
    "--ws",
    "127.0.0.1:0",
    "--api",
    "127.0.0.1:0",
    "--log",
    "info", // warn would hide the one "Comet listening" line the ports come from
    ...(pinned ? ["--workers", String(workers)] : []),
    ...flags,
  ];
  const child = new Child<NoProtocol>(`comet(${phase})`, args, s.serverCpus);
  const m = await child.waitFor((l, s) =>
    s === "err" ? /Comet listening.* tcp=[^ ]*:(\d+) ws=[^ ]*:(\d+) api=[^ ]*:(\d+)/.exec(l) : null
  );
  return { child, tcp: Number(m[1]), ws: Number(m[2]), api: Number(m[3]), flags, workers };
}

/** Stops a Comet started by {@linkcode spawnComet}, saving its GC trace if --trace-gc named `phase`. */
export async function stopComet(s: Settings, c: CometProc, phase: string): Promise<void> {
  await c.child.stop("SIGTERM");
  if (s.traceGc === phase) {
    const file = new URL(`trace-gc-${phase}.log`, OUT);
    Deno.writeTextFileSync(file, c.child.stderr);
    log(`trace-gc log: ${file.pathname}`);
  }
}
