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
 *
 * @example
 * ```ts
 * import { startRedis } from "./_redis.ts";
 * const redis = await startRedis();
 * console.log(redis.url);
 * await redis.stop();
 * ```
 */
export async function startRedis(timeoutMs = 10_000, cpus = ""): Promise<BenchRedis> {
  const port = _freePort();
  const child = new Deno.Command(cpus ? "taskset" : "redis-server", {
    args: [
      ...(cpus ? ["-c", cpus, "redis-server"] : []),
      ...["--port", String(port), "--bind", "127.0.0.1", "--save", ""],
      ...["--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) log += text;
  };
  const output = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let stopped = false;
  const redis: BenchRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    get log() {
      return log;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      await child.status;
      await output;
    },
  };
  let exited = false;
  void child.status.then(() => void (exited = true));
  const deadline = Date.now() + timeoutMs;
  while (!(await _answers(port))) {
    if (exited || Date.now() > deadline) {
      await redis.stop();
      throw new Error(
        `Redis did not start on port ${port}: ${exited ? "it exited" : "no PONG"}\n${log}`,
      );
    }
    await sleep(20);
  }
  return redis;
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
