// Helpers for tests that run Comet in a child process.
import { ROOT, RUN } from "../bench/child.ts";

// The bench harness runs Comet the same way; the tests may import bench/, not the reverse.
export { ROOT };

/** Whether `command` runs and exits 0 with `args` (e.g. `--version`): false when it is not installed. */
export async function commandAnswers(command: string, args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    // Not installed, or no --allow-run.
    return false;
  }
}

/** Flags for a server on loopback TCP alone: no WebSocket listener, no push API. */
export const TCP_ONLY: readonly string[] = ["--tcp", "127.0.0.1:0", "--ws", "off", "--api", "off"];

/**
 * The `comet` command with `args`, run from the project root with piped output, as
 * `deno task start` runs it: with `--unstable-net`, which its workers' shared ports need.
 */
export function cli(args: string[], env: Record<string, string> = {}): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: [...RUN, "src/cli.ts", ...args],
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/**
 * Starts the `comet` command with `permissions` under `ulimit -n limit` (through bash),
 * on loopback TCP and API ports of its choosing, without WebSocket, plus `args`; returns
 * it with line readers on its output.
 */
export function spawnCliUnderUlimit(
  limit: number,
  permissions: string[],
  args: string[] = [],
): { child: Deno.ChildProcess; stderr: LineReader; stdout: LineReader } {
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n ${limit} && exec "$0" "$@"`,
      Deno.execPath(),
      "run",
      "--unstable-net",
      ...permissions,
      "src/cli.ts",
      ...["--tcp", "127.0.0.1:0", "--ws", "off", "--api", "127.0.0.1:0"],
      ...args,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return { child, stderr: new LineReader(child.stderr), stdout: new LineReader(child.stdout) };
}

/** Reads lines from a byte stream; `line(pred)` resolves with the first match. */
export class LineReader {
  #lines: string[] = [];
  #waiters: (() => void)[] = [];
  #done = false;
  readonly finished: Promise<void>;
  /** Everything read so far, for failure messages. */
  log = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.finished = this.#pump(stream);
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      this.log += chunk;
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      this.#lines.push(...parts);
      this.#wake();
    }
    if (rest) this.#lines.push(rest);
    this.#done = true;
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async line(match: RegExp, timeout = 15_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeout;
    for (let i = 0;; i++) {
      while (i < this.#lines.length) {
        const m = match.exec(this.#lines[i]!);
        if (m) return m;
        i++;
      }
      if (this.#done) throw new Error(`Stream ended without ${match}:\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${match}:\n${this.log}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 100);
        this.#waiters.push(resolve);
      });
      clearTimeout(timer);
      i--;
    }
  }
}

/** Kills `child` if it still runs, then waits for it and for its output readers to finish. */
export async function stopChild(
  child: Deno.ChildProcess,
  ...readers: { finished: Promise<void> }[]
): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // already exited
  }
  await child.status;
  await Promise.all(readers.map((r) => r.finished));
}

// One implementation for the tests and the bench harness, which may not import tests/.
export { terminate } from "../bench/terminate.ts";
