// A throwaway redis-server for the cluster phase: a free loopback port, no
// persistence, stopped with SIGTERM and awaited. The bench's own, so that it
// imports nothing from tests/.
import { redisCommand, sleep } from "./_common.ts";

/** A running redis-server child process. */
export interface BenchRedis {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** `redis://127.0.0.1:port`. */
  readonly url: string;
  /** Its process id (the bench samples its CPU). */
  readonly pid: number;
  /** Everything it printed so far. */
  readonly log: string;
  /** Stops it with SIGTERM and waits for it and its output. Idempotent. */
  stop(): Promise<void>;
  /** Stops it and starts it again on the same port (with its data when it has a `dir`). */
  restart(): Promise<void>;
}

/** A free loopback TCP port: bound, read and released. */
function _freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/**
 * Starts a redis-server on a free loopback port and resolves once it answers
 * PING, within `timeoutMs`; under `taskset -c cpus` when `cpus` is a CPU list.
 * With `dir`, it keeps its data there (append-only file, fsync on every
 * write), so that {@linkcode BenchRedis.restart} finds it again; without,
 * nothing is kept.
 *
 * @example
 * ```ts
 * import { startRedis } from "./_redis.ts";
 * const redis = await startRedis();
 * console.log(redis.url);
 * await redis.stop();
 * ```
 */
export async function startRedis(timeoutMs = 10_000, cpus = "", dir = ""): Promise<BenchRedis> {
  const port = _freePort();
  const args = [
    ...(cpus ? ["-c", cpus, "redis-server"] : []),
    ...["--port", String(port), "--bind", "127.0.0.1", "--save", ""],
    ...(dir
      ? ["--dir", dir, "--appendonly", "yes", "--appendfsync", "always"]
      : ["--appendonly", "no"]),
    ...["--daemonize", "no", "--loglevel", "warning"],
  ];
  let log = "";
  let child!: Deno.ChildProcess;
  let output!: Promise<unknown>;
  let exited = false;
  let stopped = false;
  const launch = async () => {
    child = new Deno.Command(cpus ? "taskset" : "redis-server", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    exited = false;
    const mine = child;
    void mine.status.then(() => void (exited = true));
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) log += text;
    };
    output = Promise.all([collect(child.stdout), collect(child.stderr)]);
    const deadline = Date.now() + timeoutMs;
    while (!(await _answers(port))) {
      if (exited || Date.now() > deadline) {
        await halt();
        throw new Error(
          `Redis did not start on port ${port}: ${exited ? "it exited" : "no PONG"}\n${log}`,
        );
      }
      await sleep(20);
    }
  };
  const halt = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await child.status;
    await output;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child.pid;
    },
    get log() {
      return log;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt();
    },
    async restart() {
      if (stopped) throw new Error("Redis was stopped");
      await halt();
      await launch();
    },
  };
}

/** Whether a PING over a fresh connection gets an answer. */
async function _answers(port: number): Promise<boolean> {
  try {
    const reply = await redisCommand(port, "PING");
    return reply.startsWith("+PONG") || reply.startsWith("-NOAUTH");
  } catch {
    return false;
  }
}
