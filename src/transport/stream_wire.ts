import type { Frame } from "../protocol/frame.ts";
import type { FrameReader } from "../server/wire.ts";
import type { BufferPool } from "./buffer_pool.ts";

/**
 * The read side the TCP and WebSocket wires share: one socket read pending
 * at a time, into a buffer from a shared pool, and the frames parsed from it
 * handed to `read` callers or, once the hub listens (`_listen`), to its
 * reader. A subclass parses (`_step`), takes in the bytes read (`_take`) and
 * says when it is closed (`_isClosed`); it gives the read buffer back
 * (`_giveBack`) when it closes.
 *
 * Not an async loop, on purpose: an idle connection waits on its socket
 * read alone, with one continuation, and a frame already buffered is handed
 * over at once.
 *
 * @example
 * ```ts
 * import { StreamWire } from "./stream_wire.ts";
 * import { TcpWire } from "./tcp.ts";
 * console.log(TcpWire.prototype instanceof StreamWire); // true
 * ```
 */
export abstract class StreamWire {
  #conn: Deno.Conn;
  /** From the pool on the first read; back to it once closed and no read is pending. */
  #buf: Uint8Array | undefined;
  #reading = false;
  /** Set once the hub listens: frames go to it instead of to `read` callers. */
  #reader: FrameReader | undefined;

  /**
   * Reads from `conn`, which the subclass owns from now on.
   *
   * @param conn An accepted connection.
   */
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** The socket. */
  protected get _conn(): Deno.Conn {
    return this.#conn;
  }

  /** Where the read buffers come from: one pool per kind of wire, not a field per connection. */
  protected abstract get _pool(): BufferPool;

  /**
   * Takes parsed input until a frame is in (the frame), the stream ended
   * (`null`), a control frame has to be answered first (a promise: `true` to
   * step on once it is out, `false` when that was the end), or more bytes are
   * needed (`undefined`).
   *
   * @throws {Error} The subclass's protocol error, when the peer broke the protocol.
   */
  protected abstract _step(): Frame | null | Promise<boolean> | undefined;

  /** Takes in `bytes` just read from the socket (a view of the read buffer). */
  protected abstract _take(bytes: Uint8Array): void;

  /** Whether the wire was closed: a read that settles then hands nothing over. */
  protected abstract _isClosed(): boolean;

  /**
   * Reads the next frame; `null` at end of stream or once closed.
   *
   * @throws {Error} The subclass's protocol error, when the peer broke the protocol.
   */
  read(): Promise<Frame | null> {
    let next;
    try {
      next = this._step();
    } catch (err) {
      return Promise.reject(err);
    }
    if (next === undefined) return this.#fill();
    return next instanceof Promise ? this.#readOn(next) : Promise.resolve(next);
  }

  /**
   * From now on, hands each frame to `reader` as it is parsed, instead of to
   * `read` callers: an idle connection then holds its socket read and
   * nothing else. Frames already buffered go first. See `Wire._listen`.
   */
  _listen(reader: FrameReader): void {
    this.#reader = reader;
    this.#deliver(reader);
  }

  /** Hands over parsed frames until the reader pauses or more bytes are needed; then reads. */
  #deliver(reader: FrameReader): void {
    for (;;) {
      let next: Frame | null | Promise<boolean> | undefined;
      try {
        next = this._step();
      } catch (err) {
        return reader._ended(err);
      }
      if (next === undefined) {
        // The chain's own promise is not needed: the bytes come back through `#onRead`.
        void this.#fill();
        return;
      }
      if (next === null) return reader._ended();
      if (next instanceof Promise) {
        // A control frame is being answered (never rejects): on once it is out,
        // unless that was the end.
        next.then((again) => again ? this.#deliver(reader) : reader._ended());
        return;
      }
      const go = reader._frame(next);
      if (go === false) return;
      if (go !== true) {
        go.then((more) => more && this.#deliver(reader), (err) => reader._ended(err));
        return;
      }
    }
  }

  /** Reads from the socket until something is parsed. */
  #fill(): Promise<Frame | null> {
    this.#buf ??= this._pool.take();
    this.#reading = true;
    return this.#conn.read(this.#buf).then(this.#onRead, this.#onRead);
  }

  /** The read settled: bytes, `null` at end of stream, or why it failed (reset, closed under us). */
  #onRead = (n: unknown): Frame | null | Promise<Frame | null> => {
    this.#reading = false;
    const reader = this.#reader;
    if (typeof n !== "number" || this._isClosed()) {
      this._giveBack();
      reader?._ended();
      return null;
    }
    this._take(this.#buf!.subarray(0, n));
    if (reader !== undefined) {
      this.#deliver(reader);
      return null;
    }
    // A protocol error rejects the read's promise.
    const next = this._step();
    if (next === undefined) return this.#fill();
    return next instanceof Promise ? this.#readOn(next) : next;
  };

  /** A control frame is being answered: read on once it is out, unless that was the end. */
  #readOn(answered: Promise<boolean>): Promise<Frame | null> {
    return answered.then((again) => again ? this.read() : null);
  }

  /** Once closed with no read pending, the read buffer goes back to the pool. */
  protected _giveBack(): void {
    const buf = this.#buf;
    if (buf === undefined || this.#reading) return;
    this.#buf = undefined;
    this._pool.give(buf);
  }
}
