// The soak's server: the real `comet` command (through bench/comet_gc.ts) in a
// child process, and its /metrics.
import { ROOT, RUN } from "./child.ts";
import { terminate } from "./terminate.ts";

/** The API token the server runs with; /metrics wants it. */
export const TOKEN: string = `soak-${crypto.randomUUID()}`;

/** The server's listening ports. */
export interface Ports {
  tcp: number;
  ws: number;
  pkg: number;
  api: number;
}

/**
 * The `comet` command, with its stderr read line by line. Run through
 * bench/comet_gc.ts (the same command, plus a full garbage collection on
 * SIGUSR2), so that the heap is judged by what is live, not by garbage V8 has
 * not collected yet.
 */
export class Server {
  readonly child: Deno.ChildProcess;
  readonly ports: Promise<Ports>;
  /** Warnings and errors the server logged. */
  readonly complaints: string[] = [];
  readonly #reading: Promise<void>;
  #collected: (() => void) | undefined;

  constructor(extra: string[]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        ...RUN,
        "--v8-flags=--expose-gc",
        "bench/comet_gc.ts",
        "--tcp",
        "127.0.0.1:0",
        "--ws",
        "127.0.0.1:0",
        "--pkg",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
        "--api-token",
        TOKEN,
        "--log",
        "info",
        ...extra,
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.child = child;
    let found: (ports: Ports) => void = () => {};
    let failed: (err: Error) => void = () => {};
    this.ports = new Promise((resolve, reject) => {
      found = resolve;
      failed = reject;
    });
    // Reported only if nobody is waiting for the ports any more.
    this.ports.catch(() => {});
    this.#reading = (async () => {
      let rest = "";
      let log = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        const lines = rest.split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          if (log.length < 8192) log += line + "\n";
          const ports = _listening(line);
          if (ports) found(ports);
          if (line.startsWith("BENCH_MEMORY ")) this.#collected?.();
          if (/\b(WARN|ERROR)\b|"level":"(warn|error)"/.test(line)) {
            if (this.complaints.length < 1000) this.complaints.push(line);
          }
        }
      }
      failed(new Error(`The server exited before listening:\n${log}${rest}`));
    })();
  }

  /** Runs a full garbage collection in the server; settles once it is done (5 s at most). */
  async collect(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = new Promise<void>((resolve) => {
      this.#collected = resolve;
      timer = setTimeout(resolve, 5_000);
    });
    this.child.kill("SIGUSR2");
    await done;
    clearTimeout(timer);
    this.#collected = undefined;
  }

  /** SIGTERM, then the exit status (SIGKILL after 15 s). */
  async stop(): Promise<Deno.CommandStatus> {
    const status = await terminate(this.child, 15_000);
    await this.#reading;
    return status;
  }
}

/** The ports of the `Comet listening` line, as text (`tcp=host:port`) or JSON. */
function _listening(line: string): Ports | undefined {
  if (!line.includes("Comet listening")) return undefined;
  const fields: Record<string, string> = {};
  if (line.trimStart().startsWith("{")) {
    for (const [k, v] of Object.entries(JSON.parse(line))) fields[k] = String(v);
  } else {
    for (const m of line.matchAll(/(\w+)=(\S+)/g)) fields[m[1]!] = m[2]!;
  }
  const port = (name: string) => Number(/:(\d+)$/.exec(fields[name] ?? "")?.[1] ?? NaN);
  const ports = { tcp: port("tcp"), ws: port("ws"), pkg: port("pkg"), api: port("api") };
  return Object.values(ports).every((p) => p > 0) ? ports : undefined;
}

/**
 * The limit flags the server knows of, turned off: all the clients come from
 * one address; and `--workers`, where it knows it (so its own default, one
 * per core, does not decide what the soak runs).
 */
export async function noLimits(workers = 1): Promise<string[]> {
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "src/cli.ts", "--help"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).output();
  const text = new TextDecoder().decode(help.stdout);
  const flags = [
    "--max-connections-per-ip",
    "--connect-rate",
    "--max-auth-attempts",
    "--max-connections",
    "--upstream-rate",
  ];
  const has = (f: string) => new RegExp(`^\\s*${f}\\s`, "m").test(text);
  return [
    ...flags.filter(has).flatMap((f) => [f, "0"]),
    ...(has("--workers") ? ["--workers", String(workers)] : []),
  ];
}

/** `/metrics`, as series → value. */
export async function scrape(api: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${api}/metrics`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`/metrics answered ${res.status}: ${text}`);
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*(?:\{.*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** The sum of every series of `name`, labels or not. */
export function sum(metrics: Map<string, number>, name: string): number {
  let n = 0;
  for (const [series, v] of metrics) {
    if (series === name || series.startsWith(`${name}{`)) n += v;
  }
  return n;
}
