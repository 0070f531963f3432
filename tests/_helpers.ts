// Shared by the tests: a minimal goim client over raw TCP, and a server on free ports.
import { FrameDecoder } from "../src/protocol/decoder.ts";
import { encodeFrame, type Frame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { type CometServer, serve, type ServeOptions } from "../src/serve.ts";
import { silentLogger } from "../src/log.ts";
import type { FrameReader } from "../src/server/wire.ts";

export const utf8 = new TextEncoder();
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Starts a server on free loopback ports with a silent logger. */
export function startServer(options: ServeOptions = {}): CometServer {
  return serve({
    tcp: { hostname: "127.0.0.1", port: 0 },
    ws: { hostname: "127.0.0.1", port: 0 },
    api: { hostname: "127.0.0.1", port: 0 },
    logger: silentLogger,
    ...options,
  });
}

/**
 * Resolves true if `next` times out (a rejection whose message starts "Timed out") within
 * `ms`, false if it gets something; another rejection, such as a close, is false too.
 */
export async function nothingWithin(
  next: (timeout: number) => Promise<unknown>,
  ms: number,
): Promise<boolean> {
  try {
    await next(ms);
    return false;
  } catch (e) {
    return (e as Error).message.startsWith("Timed out");
  }
}

/**
 * A raw client over a stream connection: reads in the background, splits what arrives into
 * items with {@linkcode StreamClient.decode}, and hands them out with a timeout.
 */
export abstract class StreamClient<T, C extends Deno.Conn = Deno.Conn> implements AsyncDisposable {
  readonly conn: C;
  #items: T[] = [];
  #waiters: (() => void)[] = [];
  #closed = false;
  #reading: Promise<void>;
  /** What one item is called in a timeout's message, such as "frame". */
  readonly #what: string;

  protected constructor(conn: C, what: string) {
    this.conn = conn;
    this.#what = what;
    this.#reading = this.#read();
  }

  /** The whole items that `chunk` completes, in order. */
  protected abstract decode(chunk: Uint8Array): Iterable<T>;

  async #read(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.conn.read(buf);
        if (n === null) break;
        for (const item of this.decode(buf.subarray(0, n))) this.#items.push(item);
        this.#wake();
      }
    } catch {
      // reset or closed
    }
    this.#closed = true;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  async #wait(deadline: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
      this.#waiters.push(resolve);
    });
    clearTimeout(timer);
  }

  /** Writes all of `bytes`, ignoring a connection the server has closed. */
  async write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    try {
      while (at < bytes.length) at += await this.conn.write(bytes.subarray(at));
    } catch {
      // the server may have closed us
    }
  }

  /** Writes all of `bytes`; throws if the connection cannot take them. */
  protected async writeOrThrow(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) at += await this.conn.write(bytes.subarray(at));
  }

  /** Resolves with the next item; rejects after `timeout` ms or on close. */
  async next(timeout = 3000): Promise<T> {
    const deadline = Date.now() + timeout;
    while (this.#items.length === 0) {
      if (this.#closed) throw new Error("Connection closed");
      if (Date.now() >= deadline) throw new Error(`Timed out waiting for a ${this.#what}`);
      await this.#wait(deadline);
    }
    return this.#items.shift()!;
  }

  /** Resolves true if nothing arrives within `ms`. */
  silent(ms = 200): Promise<boolean> {
    return nothingWithin((timeout) => this.next(timeout), ms);
  }

  /** Resolves when the server has closed the connection; false on timeout. */
  async closedByServer(timeout = 3000): Promise<boolean> {
    const deadline = Date.now() + timeout;
    while (!this.#closed && Date.now() < deadline) await this.#wait(deadline);
    return this.#closed;
  }

  /** Items received but not yet taken. */
  get buffered(): T[] {
    return this.#items;
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
    await this.#reading;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * A raw goim client for tests over a stream connection (TCP unless made with
 * {@linkcode TestClient.over}, as over TLS): send frames, await frames.
 */
export class TestClient<C extends Deno.Conn = Deno.TcpConn> extends StreamClient<Frame, C> {
  #decoder = new FrameDecoder({ maxBody: 1 << 20 });
  seq = 0;

  private constructor(conn: C) {
    super(conn, "frame");
  }

  /** A client over an open connection of any kind, such as a `Deno.TlsConn`. */
  static over<C extends Deno.Conn>(conn: C): TestClient<C> {
    return new TestClient(conn);
  }

  static async connect(port: number, hostname = "127.0.0.1"): Promise<TestClient> {
    return new TestClient(await Deno.connect({ hostname, port }));
  }

  /** Connects and authenticates with goim's JSON; resolves after op 8. */
  static async auth(
    port: number,
    auth: Record<string, unknown>,
    hostname = "127.0.0.1",
  ): Promise<TestClient> {
    const c = await TestClient.connect(port, hostname);
    const seq = c.sendFrame(Op.Auth, utf8.encode(JSON.stringify(auth)));
    const reply = await c.next();
    if (reply.op !== Op.AuthReply || reply.seq !== seq) {
      throw new Error(`Expected auth reply, got op ${reply.op} seq ${reply.seq}`);
    }
    return c;
  }

  protected override decode(chunk: Uint8Array): Iterable<Frame> {
    return this.#decoder.decode(chunk);
  }

  /** Sends one frame; returns its seq. */
  sendFrame(op: number, body: Uint8Array | string = new Uint8Array(0), seq = ++this.seq): number {
    const bytes = typeof body === "string" ? utf8.encode(body) : body;
    void this.write(encodeFrame(op, seq, bytes));
    return seq;
  }

  /** Sends one frame and waits until it is written; returns its seq, or throws if it cannot. */
  async send(op: number, body: Uint8Array | string = "", seq = ++this.seq): Promise<number> {
    await this.writeOrThrow(
      encodeFrame(op, seq, typeof body === "string" ? utf8.encode(body) : body),
    );
    return seq;
  }

  /** Next frame with op `op`, skipping others. */
  async nextOp(op: number, timeout = 3000): Promise<Frame> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      if (f.op === op) return f;
    }
  }
}

/** POSTs to the push API; returns status and parsed envelope. */
export async function api(
  server: CometServer,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: { code: number; message: string; data: unknown } }> {
  const res = await fetch(`http://127.0.0.1:${server.addrs.api!.port}${path}`, init);
  const body = await res.json();
  return { status: res.status, body };
}

/** Polls `check` every 10 ms until it is true or `timeout` ms pass. */
export async function until(check: () => boolean, timeout = 3000): Promise<boolean> {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/**
 * A {@linkcode FrameReader} for tests of listening wires: records the ops it is handed and
 * how the stream ended, and answers each frame as `answer` says.
 */
export class FrameRecorder implements FrameReader {
  ops: number[] = [];
  ended: unknown[] = [];
  answer: (op: number) => boolean | Promise<boolean> = () => true;
  #done = Promise.withResolvers<void>();
  _frame(frame: Frame): boolean | Promise<boolean> {
    this.ops.push(frame.op);
    return this.answer(frame.op);
  }
  _ended(err?: unknown): void {
    this.ended.push(err);
    this.#done.resolve();
  }
  /** Settles once the stream has ended. */
  get done(): Promise<void> {
    return this.#done.promise;
  }
}

/** A loopback pair: the client socket and a wire over the accepted one. */
export async function wirePair<W extends { close(): void }>(
  wrap: (conn: Deno.TcpConn) => W,
): Promise<{ client: Deno.TcpConn; wire: W } & Disposable> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const wire = wrap(await listener.accept());
  return {
    client,
    wire,
    [Symbol.dispose]() {
      wire.close();
      try {
        client.close();
      } catch {
        // Closed by the test.
      }
    },
  };
}
