// A Deno child process of the harness, spoken to over JSON lines on stdin and
// stdout (see bench/messages.ts); its stderr is kept for error messages.
import { ourPids } from "./machine_cpu.ts";
import type { Protocol } from "./messages.ts";
import { log } from "./run_log.ts";

/** The repository root: every child runs there. */
export const ROOT: URL = new URL("../", import.meta.url);

/** Where the harness writes results.json, fanout.svg, logs and profiles. */
export const OUT: URL = new URL("bench/out/", ROOT);

/** The absolute path of `rel` under the repository root. */
export function rootPath(rel: string): string {
  return new URL(rel, ROOT).pathname;
}

/** `deno run` with the permissions every child gets, and `--unstable-net` for `--workers N`. */
export const RUN: readonly string[] = [
  "run",
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-env",
];

/** A command's reply line before its fields are read. */
interface _Reply {
  ok: boolean;
  error?: string;
}

/**
 * A child process spoken to over JSON lines on stdin/stdout; stderr is kept for errors.
 * `P` names the commands it answers. With `cpus` (a taskset CPU list) it runs
 * under `taskset -c cpus`, which execs Deno in place: the pid is Deno's, so
 * its CPU time is read as before.
 *
 * @example
 * ```ts
 * import { Child, rootPath, RUN } from "./child.ts";
 * import type { LoadgenProtocol } from "./messages.ts";
 * const gen = new Child<LoadgenProtocol>("loadgen1", [...RUN, rootPath("bench/loadgen.ts")]);
 * console.log((await gen.call("stats", { detail: false })).live);
 * await gen.stop();
 * ```
 */
export class Child<P extends Protocol> {
  /** Its name in messages. */
  readonly name: string;
  /** The process. */
  readonly proc: Deno.ChildProcess;
  /** Its process id. */
  readonly pid: number;
  /** The last 20,000 characters it wrote on stderr. */
  stderr = "";
  /** Its exit status, once it exits. */
  readonly exited: Promise<Deno.CommandStatus>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: string[] = [];
  #waiters: (() => void)[] = [];
  #done = false;
  #nextId = 1;

  constructor(name: string, args: string[], cpus = "") {
    this.name = name;
    this.proc = new Deno.Command(cpus ? "taskset" : Deno.execPath(), {
      args: cpus ? ["-c", cpus, Deno.execPath(), ...args] : args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      cwd: ROOT.pathname,
    }).spawn();
    this.pid = this.proc.pid;
    ourPids.add(this.pid);
    this.#writer = this.proc.stdin.getWriter();
    void this.#pump(this.proc.stdout, (l) => {
      this.#lines.push(l);
      this.#wake();
    }).then(() => {
      this.#done = true;
      this.#wake();
    });
    void this.#pump(this.proc.stderr, (l) => {
      this.stderr = (this.stderr + l + "\n").slice(-20_000);
      this.#wake();
    });
    this.exited = this.proc.status;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async #pump(stream: ReadableStream<Uint8Array>, onLine: (l: string) => void): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      for (const p of parts) onLine(p);
    }
    if (rest) onLine(rest);
  }

  /** Resolves after new output, or after `ms` at most. */
  async #nextOutput(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((r) => {
      this.#waiters.push(r);
      timer = setTimeout(r, ms);
    });
    clearTimeout(timer);
  }

  /** Resolves with the first stdout or stderr line matching, within `timeout` ms. */
  async waitFor(
    test: (line: string, stream: "out" | "err") => RegExpExecArray | null,
    timeout = 20_000,
  ): Promise<RegExpExecArray> {
    const deadline = performance.now() + timeout;
    let seenOut = 0;
    for (;;) {
      for (; seenOut < this.#lines.length; seenOut++) {
        const m = test(this.#lines[seenOut]!, "out");
        if (m) return m;
      }
      for (const l of this.stderr.split("\n")) {
        const m = test(l, "err");
        if (m) return m;
      }
      if (this.#done) throw new Error(`${this.name} exited:\n${this.stderr}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${this.name}: timed out waiting:\n${this.stderr}`);
      await this.#nextOutput(Math.min(left, 200));
    }
  }

  /** Sends the command `cmd` and resolves with its reply. */
  async call<C extends keyof P & string>(
    cmd: C,
    args: P[C]["args"],
    timeout = 60_000,
  ): Promise<P[C]["reply"]> {
    const id = this.#nextId++;
    const line = JSON.stringify({ cmd, ...args, id }) + "\n";
    await this.#writer.write(new TextEncoder().encode(line));
    const deadline = performance.now() + timeout;
    for (;;) {
      const i = this.#lines.findIndex((l) => l.startsWith(`{"id":${id},`));
      if (i >= 0) {
        const reply = JSON.parse(this.#lines.splice(i, 1)[0]!) as _Reply & P[C]["reply"];
        if (!reply.ok) throw new Error(`${this.name} ${cmd} failed: ${reply.error}`);
        return reply;
      }
      if (this.#done) throw new Error(`${this.name} exited during ${cmd}:\n${this.stderr}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${this.name}: ${cmd} timed out:\n${this.stderr}`);
      await this.#nextOutput(Math.min(left, 500));
    }
  }

  /** Stops the process: `signal` first, SIGKILL after `grace` ms. */
  async stop(signal: Deno.Signal = "SIGTERM", grace = 12_000): Promise<void> {
    try {
      this.proc.kill(signal);
    } catch {
      // already gone
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), grace)));
    if (await Promise.race([this.exited, late]) === "late") {
      log(`${this.name} did not stop in ${grace} ms; killing it`);
      try {
        this.proc.kill("SIGKILL");
      } catch {
        // gone
      }
      await this.exited;
    }
    clearTimeout(timer);
    try {
      await this.#writer.close();
    } catch {
      // closed
    }
  }
}
