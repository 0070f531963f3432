// Runs a throwaway redis-server on a free loopback port for tests: no persistence, its own
// port, stopped with SIGTERM and awaited so the ops and resources sanitizers stay quiet.
// Tests that need it pass `ignore: !redisAvailable`; .ci/install_redis.sh installs it.
//
//   await using redis = await startRedis({ password: "s3cret" });
//   const client = await RedisClient.connect(redis.url);
import { commandAnswers } from "./_process.ts";

/** Whether `redis-server` can be run here. */
export const redisAvailable: boolean = await commandAnswers("redis-server", ["--version"]);

/** Options for `startRedis`. */
export interface StartRedisOptions {
  /** Passed as `--requirepass`; `url` then carries it. */
  password?: string;
  /** Port to listen on; default a free one. */
  port?: number;
  /** How long to wait for the server to answer PING, in ms. Default 10 000. */
  timeout?: number;
}

/** A free loopback TCP port: bound, read and released. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

const _delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One PING over a fresh socket; true once the server answers (even with NOAUTH). */
async function _answers(port: number): Promise<boolean> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return false;
  }
  try {
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buffer = new Uint8Array(64);
    const n = await conn.read(buffer);
    const reply = n === null ? "" : new TextDecoder().decode(buffer.subarray(0, n));
    return reply.startsWith("+PONG") || reply.startsWith("-NOAUTH");
  } catch {
    return false;
  } finally {
    conn.close();
  }
}

/** A running redis-server child process. */
export class RedisServer implements AsyncDisposable {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** `redis://[:password@]127.0.0.1:port`. */
  readonly url: string;
  /** Everything the server printed, for failure messages. */
  log = "";
  #password: string | undefined;
  #timeout: number;
  #child: Deno.ChildProcess | undefined;
  #output: Promise<void> | undefined;

  constructor(port: number, password: string | undefined, timeout: number) {
    this.port = port;
    this.#password = password;
    this.#timeout = timeout;
    const auth = password === undefined ? "" : `:${encodeURIComponent(password)}@`;
    this.url = `redis://${auth}127.0.0.1:${port}`;
  }

  /** The process id while it runs (the bench samples its CPU). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Whether the process is running. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts the process (again, on the same port) and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.#child !== undefined) throw new Error(`Redis is already running: port ${this.port}`);
    const args = [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      "--loglevel",
      "warning",
    ];
    if (this.#password !== undefined) args.push("--requirepass", this.#password);
    const child = new Deno.Command("redis-server", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#output = Promise.all([this.#collect(child.stdout), this.#collect(child.stderr)])
      .then(() => {});
    let exited = false;
    const status = child.status.then(() => void (exited = true));
    const deadline = Date.now() + this.#timeout;
    while (!(await _answers(this.port))) {
      if (exited || Date.now() > deadline) {
        await this.stop();
        await status;
        throw new Error(
          `Redis did not start on port ${this.port}: ${
            exited ? "it exited" : "no PONG"
          }\n${this.log}`,
        );
      }
      await _delay(20);
    }
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) this.log += text;
  }

  /** Stops the process with SIGTERM and waits for it to exit. Idempotent. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await child.status;
    await this.#output;
  }

  /** Stops and starts the server on the same port; every client connection drops. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Same as `stop()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Starts a redis-server on a free loopback port and resolves once it answers PING. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const server = new RedisServer(
    options.port ?? freePort(),
    options.password,
    options.timeout ?? 10_000,
  );
  await server.start();
  return server;
}
