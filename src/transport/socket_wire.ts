import { _int32 } from "../protocol/_int.ts";
import { DEFAULT_MAX_BODY, type Frame, HEADER_SIZE } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import type { ConnInfo, PeerAddr, Wire } from "../server/wire.ts";
import { type TrafficCounter, trafficCounter } from "./traffic.ts";
import { WebSocketError, WsCloseCode } from "./websocket_codec.ts";
import { decodeGoimMessage, encodeGoimMessages, NO_MESSAGE_HEADER } from "./ws_batch.ts";

/** How often the shared poller looks at congested sockets, in milliseconds. */
const _POLL_MS = 25;
/** RFC 6455 caps a close frame's reason at 123 bytes of UTF-8. */
const _MAX_REASON = 123;
const _DONE: Promise<void> = Promise.resolve();
const _encoder = new TextEncoder();
// Every socket wire encodes the same frames to the same bytes: see `sharedEncoding`.
const _SHARED_ENCODING = {};

function _reason(text: string): string {
  // Only on close, and messages are short ASCII: trimming a character at a time is fine.
  while (_encoder.encode(text).length > _MAX_REASON) text = text.slice(0, -1);
  return text;
}

function _closed(): Deno.errors.BadResource {
  return new Deno.errors.BadResource("WebSocket wire is closed");
}

/** The size limits of a wire, checked. */
function _limits(options: SocketWireOptions) {
  const maxBody = options.maxBody ?? DEFAULT_MAX_BODY;
  if (!Number.isSafeInteger(maxBody) || maxBody < 0 || maxBody > 0x7fffffff - HEADER_SIZE) {
    throw new RangeError(`Max body must be a non-negative integer: ${maxBody}`);
  }
  const high = options.highWaterMark ?? 1 << 20;
  if (!Number.isSafeInteger(high) || high < 0) {
    throw new RangeError(`High-water mark must be a non-negative integer: ${high}`);
  }
  const low = options.lowWaterMark ?? Math.floor(high / 2);
  if (!Number.isSafeInteger(low) || low < 0 || low > high) {
    throw new RangeError(`Low-water mark must be an integer from 0 to the high-water mark: ${low}`);
  }
  const maxPending = options.maxPending ?? 64;
  if (!Number.isSafeInteger(maxPending) || maxPending < 1) {
    throw new RangeError(`Max pending must be a positive integer: ${maxPending}`);
  }
  return { maxPack: HEADER_SIZE + maxBody, high, low, maxPending };
}

/** Options for {@linkcode SocketWire}. */
export interface SocketWireOptions {
  /** Largest inbound goim body; a message may hold one frame of at most this. Default 4096. */
  maxBody?: number;
  /** Transport name for the operator. Default `"ws"`; e.g. `"edge"` to tell them apart. */
  transport?: string;
  /** The client's address, e.g. from `Deno.ServeHandlerInfo.remoteAddr`. Default `0.0.0.0:0`. */
  remoteAddr?: PeerAddr;
  /**
   * The upgrade request's headers (cookie, origin) for the operator: a copy,
   * as Deno's request headers cannot be read once the request is upgraded.
   */
  headers?: Headers;
  /**
   * Bytes the socket may hold unsent (`bufferedAmount`) before a write stops
   * resolving, so the connection's queue fills and the hub's slow-consumer
   * policy applies. Default 1 MiB.
   */
  highWaterMark?: number;
  /** A stalled write resolves once `bufferedAmount` is at most this. Default half the high-water mark. */
  lowWaterMark?: number;
  /**
   * Unread inbound frames held before the peer counts as flooding (close
   * 1008). Default 64. A `WebSocket` object reads eagerly, so a client that
   * sends while the hub is not reading from it (its queue is full, its auth
   * is being decided) cannot be throttled by its TCP window as on the socket
   * transports: past this many frames it is closed instead.
   */
  maxPending?: number;
}

/**
 * goim's binary protocol over a standard `WebSocket` object, as
 * `Deno.upgradeWebSocket` returns it: for where only `Deno.serve` exists (an
 * edge platform, or an application's own HTTP server). Every binary message
 * must hold exactly one goim frame; a text message closes with 1003, a
 * malformed frame with 1002, an oversized one with 1009, and more than
 * `maxPending` unread frames with 1008.
 *
 * Outbound, replies go out as messages of their own and a run of pushes
 * flushed together as one op-9 message, as goim does. `send` never waits, so
 * a write stops resolving while the socket holds more than the high-water
 * mark unsent: the connection's queue then fills and the hub's slow-consumer
 * policy applies, as on every other transport. One module-wide poller, armed
 * only while some socket is congested, wakes stalled writes; no timer is made
 * per connection.
 *
 * @example
 * ```ts ignore
 * import { Comet } from "../server/comet.ts";
 * import { SocketWire } from "./socket_wire.ts";
 *
 * const comet = new Comet();
 * Deno.serve((req, info) => {
 *   // Copy both first: Deno's request can no longer be read once upgraded.
 *   const { hostname, port } = info.remoteAddr as Deno.NetAddr;
 *   const headers = new Headers(req.headers);
 *   const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 0 });
 *   void comet.serve(new SocketWire(socket, { remoteAddr: { hostname, port }, headers }));
 *   return response;
 * });
 * ```
 */
export class SocketWire implements Wire {
  /** Transport facts for the operator. */
  readonly info: ConnInfo;
  #socket: WebSocket;
  #maxPack: number;
  #high: number;
  #low: number;
  /** A stalled write resolves at this many unsent bytes. */
  #drainTo = 0;
  #maxPending: number;
  #pending: Frame[] = [];
  #readResolve: ((frame: Frame | null) => void) | undefined;
  #readReject: ((err: unknown) => void) | undefined;
  #drainResolve: ((refused: boolean) => void) | undefined;
  #drainReject: ((err: unknown) => void) | undefined;
  #error: WebSocketError | undefined;
  /** The peer is gone: its close arrived, or the socket failed. */
  #ended = false;
  /** {@linkcode SocketWire.close} was called. */
  #closed = false;
  #closeCode: number = WsCloseCode.Normal;
  #closeReason = "";
  #traffic: TrafficCounter;

  /** Sockets whose writes wait for `bufferedAmount` to fall. */
  static #congested = new Set<SocketWire>();
  static #poller: ReturnType<typeof setTimeout> | undefined;

  /**
   * Wraps a socket, open or still connecting (as `Deno.upgradeWebSocket`
   * returns it before the 101 response is sent). The wire owns it from now on.
   * The goim bytes of its messages (the socket hides WebSocket framing) count
   * towards {@linkcode trafficCounter} of its transport name.
   *
   * @throws {RangeError} When a size option is out of range.
   */
  constructor(socket: WebSocket, options: SocketWireOptions = {}) {
    const limits = _limits(options);
    this.#maxPack = limits.maxPack;
    this.#high = limits.high;
    this.#low = limits.low;
    this.#maxPending = limits.maxPending;
    const addr = options.remoteAddr ?? { hostname: "0.0.0.0", port: 0 };
    this.info = {
      transport: options.transport ?? "ws",
      remoteAddr: { hostname: addr.hostname, port: addr.port },
    };
    if (options.headers) this.info.headers = options.headers;
    this.#traffic = trafficCounter(this.info.transport);
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (e) => this.#message(e));
    socket.addEventListener("open", () => {
      // A close requested while connecting takes effect now: Deno's socket drops it otherwise.
      if (this.#closed) this.#sendClose();
    });
    const end = () => this.#end();
    socket.addEventListener("close", end);
    socket.addEventListener("error", end);
  }

  /**
   * Checks `options` as the constructor does, so that a factory of wires
   * fails when it is set up rather than at its first connection.
   *
   * @throws {RangeError} When a size option is out of range.
   */
  static checkOptions(options: SocketWireOptions): void {
    _limits(options);
  }

  /** Bytes the socket holds unsent. */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  /**
   * Resolves with the next inbound frame, in order; `null` once the peer is
   * gone or the wire was closed.
   *
   * @throws {WebSocketError} When the peer broke the protocol: a text
   * message, a message that is not exactly one goim frame, one over the body
   * limit, or a flood of unread frames. Frames still unread are dropped.
   */
  read(): Promise<Frame | null> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#pending.length > 0) return Promise.resolve(this.#pending.shift()!);
    if (this.#ended || this.#closed) return Promise.resolve(null);
    if (this.#readResolve) return Promise.reject(new TypeError("A read is already under way"));
    return new Promise((resolve, reject) => {
      this.#readResolve = resolve;
      this.#readReject = reject;
    });
  }

  /**
   * The flush as goim's WebSocket clients read it (see
   * {@linkcode encodeGoimMessages}): top-level goim frames back to back, each
   * to become one message.
   */
  encode(chunks: readonly Uint8Array[], count: number, _bytes: number): Uint8Array {
    return encodeGoimMessages(chunks, count, NO_MESSAGE_HEADER);
  }

  /**
   * The same for every socket wire (see {@linkcode Wire.sharedEncoding}):
   * `encode` depends on the frames alone, and `write` only reads the bytes.
   */
  get sharedEncoding(): object {
    return _SHARED_ENCODING;
  }

  /**
   * Sends each top-level frame of `data` as one binary message. Resolves at
   * once unless the socket then holds more than the high-water mark unsent;
   * then once it has drained to the low-water mark. A flush ending with op 6
   * (the hub's goodbye) resolves once it has all left. Before the socket opens
   * (only a goodbye can be queued then) the data is dropped: it has nowhere
   * to go.
   *
   * @throws {Deno.errors.BadResource} When the wire was closed or the peer is gone.
   */
  write(data: Uint8Array): Promise<boolean | void> {
    const socket = this.#socket;
    if (this.#closed || this.#ended) return Promise.reject(_closed());
    if (socket.readyState === WebSocket.CONNECTING) return _DONE;
    if (socket.readyState !== WebSocket.OPEN) return Promise.reject(_closed());
    this.#traffic.bytesOut += data.length;
    let last = 0;
    for (let at = 0; at < data.length;) {
      const packLen = _int32(data, at);
      socket.send(data.subarray(at, at + packLen));
      last = at;
      at += packLen;
    }
    // The hub's goodbye (op 6) ends a flush and the session: wait until it has left, so that
    // a shutdown that ends the process right after does not lose it.
    const goodbye = data.length > 0 && _int32(data, last + 8) === Op.DisconnectReply;
    if (socket.bufferedAmount <= (goodbye ? 0 : this.#high)) return _DONE;
    this.#drainTo = goodbye ? 0 : this.#low;
    // Resolves `true`: the socket held more than it should, so the peer reads slower than it is sent to.
    return new Promise<boolean>((resolve, reject) => {
      this.#drainResolve = resolve;
      this.#drainReject = reject;
      SocketWire.#watch(this);
    });
  }

  /**
   * Closes the socket with 1000, or with the code of the violation read last
   * (1002, 1003, 1008, 1009). A socket still connecting is closed as soon as
   * it opens. Pending reads resolve with `null`; a stalled write rejects.
   * Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending.length = 0;
    this.#settle();
    if (this.#socket.readyState === WebSocket.OPEN) this.#sendClose();
  }

  #sendClose(): void {
    const socket = this.#socket;
    try {
      socket.close(this.#closeCode, this.#closeReason);
    } catch {
      // A runtime that only lets applications send 1000 and 3000-4999 still gets a close.
      try {
        socket.close();
      } catch {
        // Already closing.
      }
    }
  }

  #message(e: MessageEvent): void {
    if (this.#error || this.#closed) return;
    const data: unknown = e.data;
    if (!(data instanceof ArrayBuffer)) {
      this.#fail(WsCloseCode.UnsupportedData, "Text messages are not supported");
      return;
    }
    const message = new Uint8Array(data);
    const n = message.length;
    this.#traffic.bytesIn += n;
    let frame: Frame;
    try {
      frame = decodeGoimMessage(message);
    } catch (err) {
      const violation = err as WebSocketError;
      this.#fail(violation.code, violation.message);
      return;
    }
    if (n > this.#maxPack) {
      this.#fail(
        WsCloseCode.MessageTooBig,
        `Body exceeds the limit of ${this.#maxPack - HEADER_SIZE} bytes: ${n - HEADER_SIZE}`,
      );
      return;
    }
    const resolve = this.#readResolve;
    if (resolve) {
      this.#readResolve = this.#readReject = undefined;
      resolve(frame);
    } else if (this.#pending.length >= this.#maxPending) {
      this.#fail(
        WsCloseCode.PolicyViolation,
        `Client sent more than ${this.#maxPending} frames the server has not read yet`,
      );
    } else {
      this.#pending.push(frame);
    }
  }

  /** Records a violation; the hub reads it as a protocol error and closes with its code. */
  #fail(code: number, message: string): void {
    const err = new WebSocketError(code, message);
    this.#error = err;
    this.#closeCode = code;
    this.#closeReason = _reason(message);
    this.#pending.length = 0;
    const reject = this.#readReject;
    if (reject) {
      this.#readResolve = this.#readReject = undefined;
      reject(err);
    }
  }

  /** The peer's close or a socket error; Deno may report both, and twice. */
  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#settle();
  }

  /** Wakes a waiting read with `null` and fails a stalled write. */
  #settle(): void {
    const resolve = this.#readResolve;
    if (resolve) {
      this.#readResolve = this.#readReject = undefined;
      resolve(null);
    }
    const reject = this.#drainReject;
    if (reject) {
      this.#drainResolve = this.#drainReject = undefined;
      SocketWire.#unwatch(this);
      reject(_closed());
    }
  }

  static #watch(wire: SocketWire): void {
    SocketWire.#congested.add(wire);
    SocketWire.#arm();
  }

  static #unwatch(wire: SocketWire): void {
    const congested = SocketWire.#congested;
    if (!congested.delete(wire) || congested.size > 0) return;
    if (SocketWire.#poller !== undefined) {
      clearTimeout(SocketWire.#poller);
      SocketWire.#poller = undefined;
    }
  }

  static #arm(): void {
    if (SocketWire.#poller !== undefined) return;
    const id = setTimeout(SocketWire.#poll, _POLL_MS);
    // Congested sockets keep the process alive on their own; the poller must not.
    Deno.unrefTimer(id);
    SocketWire.#poller = id;
  }

  static #poll = (): void => {
    SocketWire.#poller = undefined;
    for (const wire of SocketWire.#congested) {
      if (wire.#socket.bufferedAmount > wire.#drainTo) continue;
      SocketWire.#congested.delete(wire);
      const resolve = wire.#drainResolve;
      wire.#drainResolve = wire.#drainReject = undefined;
      resolve?.(true);
    }
    if (SocketWire.#congested.size > 0) SocketWire.#arm();
  };
}
