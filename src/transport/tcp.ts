import { FrameDecoder } from "../protocol/decoder.ts";
import type { Frame } from "../protocol/frame.ts";
import type { Comet } from "../server/comet.ts";
import type { ConnInfo, Wire } from "../server/wire.ts";

/**
 * Bytes a connection reads at a time. Small on purpose: idle connections
 * dominate a push server's memory, and the decoder stitches larger frames
 * from several reads.
 */
const _READ_SIZE = 512;

/**
 * goim's binary protocol over a TCP (or TLS) stream: the frame decoder on the
 * read side; on the write side, a batch of frames is simply the frames back
 * to back, written with one call.
 *
 * @example
 * ```ts ignore
 * import { TcpWire } from "./tcp.ts";
 * const conn = await Deno.connect({ port: 3101 });
 * const wire = new TcpWire(conn, { maxBody: 4096 });
 * ```
 */
export class TcpWire implements Wire {
  /** Transport facts for the operator. */
  readonly info: ConnInfo;
  #conn: Deno.Conn;
  #decoder: FrameDecoder;
  #buf: Uint8Array | undefined;
  #closed = false;

  /**
   * Wraps an accepted connection.
   *
   * @param conn An accepted connection.
   * @param options `maxBody` caps inbound bodies; `transport` names it (`"tcp"`, `"tls"`).
   */
  constructor(conn: Deno.Conn, options: { maxBody?: number; transport?: string } = {}) {
    this.#conn = conn;
    this.#decoder = new FrameDecoder({ maxBody: options.maxBody ?? 4096 });
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.info = {
      transport: options.transport ?? "tcp",
      remoteAddr: { hostname: addr.hostname, port: addr.port },
    };
  }

  /** Reads the next frame; `null` at end of stream or once closed. */
  async read(): Promise<Frame | null> {
    for (;;) {
      // Closed means closed: frames still buffered from the last read are not handed out.
      if (this.#closed) return null;
      const frame = this.#decoder.next();
      if (frame !== undefined) return frame;
      this.#buf ??= new Uint8Array(_READ_SIZE);
      let n: number | null;
      try {
        n = await this.#conn.read(this.#buf);
      } catch {
        return null; // reset by peer, or closed under us
      }
      if (n === null) return null;
      this.#decoder.push(this.#buf.subarray(0, n));
    }
  }

  /** Frames back to back; a single frame is passed through without a copy. */
  encode(chunks: readonly Uint8Array[], count: number, bytes: number): Uint8Array {
    if (count === 1) return chunks[0]!;
    const out = new Uint8Array(bytes);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const chunk = chunks[i]!;
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  /** Writes all of `data`, looping over partial writes. */
  async write(data: Uint8Array): Promise<void> {
    let at = 0;
    while (at < data.length) {
      at += await this.#conn.write(at === 0 ? data : data.subarray(at));
    }
  }

  /** Closes the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }
}

/** Where to listen. */
export interface ListenOptions {
  /** Interface to bind. Default `127.0.0.1`. */
  hostname?: string;
  /** Port; 0 picks a free one. */
  port: number;
}

/**
 * An accept loop feeding connections to a {@linkcode Comet}. Closing it
 * stops accepting; connections already accepted are the hub's to close.
 */
export class TcpAcceptor implements AsyncDisposable {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** Settles when the accept loop has stopped. */
  readonly finished: Promise<void>;
  #listener: Deno.Listener;
  #closed = false;

  /**
   * Starts accepting on `listener`.
   *
   * @param comet The hub that serves each connection.
   * @param listener A bound TCP or TLS listener.
   * @param transport Name reported to the operator: `"tcp"` or `"tls"`.
   */
  constructor(comet: Comet, listener: Deno.Listener, transport = "tcp") {
    this.#listener = listener;
    this.addr = listener.addr as Deno.NetAddr;
    this.finished = this.#accept(comet, transport);
  }

  async #accept(comet: Comet, transport: string): Promise<void> {
    const maxBody = comet.maxBody;
    while (!this.#closed) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#closed || err instanceof Deno.errors.BadResource) return;
        // Out of file descriptors and the like: back off briefly, keep serving.
        comet.logger.warn("Accept failed", { transport, error: err });
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (transport === "tcp") {
        try {
          (conn as Deno.TcpConn).setNoDelay(true);
        } catch {
          // The peer may already be gone.
        }
      }
      comet.serve(new TcpWire(conn, { maxBody, transport })).catch((err) => {
        comet.logger.error("Session crashed", { error: err });
      });
    }
  }

  /** Stops accepting. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
  }

  /** Stops accepting and waits for the loop to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.finished;
  }
}

/**
 * Listens on TCP and serves goim's binary protocol with `comet`.
 *
 * @example
 * ```ts ignore
 * import { Comet } from "../server/comet.ts";
 * import { listenTcp } from "./tcp.ts";
 *
 * const comet = new Comet();
 * const acceptor = listenTcp(comet, { hostname: "127.0.0.1", port: 3101 });
 * ```
 */
export function listenTcp(comet: Comet, options: ListenOptions): TcpAcceptor {
  const listener = Deno.listen({
    transport: "tcp",
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port,
  });
  return new TcpAcceptor(comet, listener, "tcp");
}
