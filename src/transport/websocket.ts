import { _int32 } from "../protocol/_int.ts";
import { DEFAULT_MAX_BODY, type Frame, HEADER_SIZE } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import type { Comet } from "../server/comet.ts";
import type { ConnInfo, Wire } from "../server/wire.ts";
import { Acceptor, bindListener, type ListenOptions, type TlsCertificate } from "./acceptor.ts";
import {
  encodeClose,
  encodePong,
  WebSocketError,
  writeWsHeader,
  WsCloseCode,
  type WsEvent,
  wsHeaderSize,
  WsOpcode,
} from "./websocket_codec.ts";
import { WebSocketParser } from "./websocket_parser.ts";
import { forwardedClient } from "./forwarded_for.ts";
import { TrustedProxies } from "../server/trusted_proxies.ts";
import { decodeGoimMessage, encodeGoimMessages, type MessageHeader } from "./ws_batch.ts";
import { BatchCache } from "./batch_cache.ts";
import { BufferPool } from "./buffer_pool.ts";
import { StreamWire } from "./stream_wire.ts";
import { closeQuietly, type TrafficCounter, trafficCounter, writeAll } from "./traffic.ts";
import { acceptUpgrade, HandshakeError } from "./ws_handshake.ts";

/** Bytes a connection reads at a time; small for the same reason as on TCP. */
const _READ_SIZE = 512;
/** How long a close frame may take to leave before the socket is cut anyway. */
const _LINGER_MS = 2_000;
const EMPTY = new Uint8Array(0);

/** Each message behind an unmasked binary frame header. */
const _WS_BINARY: MessageHeader = {
  size: (payloadLength) => wsHeaderSize(payloadLength),
  write: (target, offset, payloadLength) =>
    writeWsHeader(target, offset, WsOpcode.Binary, payloadLength),
};

type _State = "handshake" | "open" | "closed";

// Shared by every WebSocket wire, as on TCP: a room round encodes its messages once.
const _batches = new BatchCache();
// Frames not ending in op 6 become the same binary messages on every WebSocket wire.
const _SHARED_ENCODING = {};

// Sockets closing behind a best-effort close frame, each with its deadline. One
// timer serves them all, armed only while any is waiting.
const _lingering = new Map<Deno.Conn, number>();
let _sweeper: ReturnType<typeof setTimeout> | undefined;

function _sweep(): void {
  _sweeper = undefined;
  const now = performance.now();
  // Every entry waits the same time, so insertion order is deadline order.
  for (const [conn, deadline] of _lingering) {
    if (deadline > now) {
      Deno.unrefTimer(_sweeper = setTimeout(_sweep, deadline - now));
      return;
    }
    _lingering.delete(conn);
    closeQuietly(conn);
  }
}

function _release(conn: Deno.Conn): void {
  if (!_lingering.delete(conn)) return;
  closeQuietly(conn);
  if (_lingering.size === 0 && _sweeper !== undefined) {
    clearTimeout(_sweeper);
    _sweeper = undefined;
  }
}

/** Writes `frame`, then closes `conn`; a peer that does not read is cut off after a while. */
function _lingerClose(conn: Deno.Conn, frame: Uint8Array, traffic: TrafficCounter): void {
  _lingering.set(conn, performance.now() + _LINGER_MS);
  if (_sweeper === undefined) {
    Deno.unrefTimer(_sweeper = setTimeout(_sweep, _LINGER_MS));
  }
  writeAll(conn, frame, traffic).catch(() => {}).finally(() => _release(conn));
}

/**
 * `info` with headers, as a literal of three properties (see WsWire's
 * upgrade), and the client's address when a trusted proxy forwarded it.
 */
function _withHeaders(info: ConnInfo, headers: Headers, proxies: TrustedProxies): ConnInfo {
  const remoteAddr = forwardedClient(info.remoteAddr, headers, proxies);
  return { transport: info.transport, remoteAddr, headers };
}

const _NO_PROXIES = new TrustedProxies();

function _ended(): false {
  return false;
}

/** Options for {@linkcode WsWire}. */
export interface WsWireOptions {
  /** Largest inbound goim body; a message may hold one frame of at most this. Default 4096. */
  maxBody?: number;
  /** Transport name for the operator: `"ws"` (default) or `"wss"`. */
  transport?: string;
  /** The path upgrades are accepted on. Default `/sub`. */
  path?: string;
  /** Largest HTTP request head in bytes. Default 8 KiB. */
  maxHeadSize?: number;
  /**
   * Set when the opening handshake already happened elsewhere: the request's
   * headers, and any bytes read past its head. Otherwise the first `read`
   * performs it.
   */
  upgraded?: { headers: Headers; rest?: Uint8Array };
  /**
   * Reverse proxies whose upgrades name their client in `X-Forwarded-For`
   * (see {@linkcode forwardedClient}); `info.remoteAddr` is then the client.
   * Default: none.
   */
  proxies?: TrustedProxies;
}

/**
 * goim's binary protocol over WebSocket (RFC 6455) on a raw connection. The
 * first {@linkcode WsWire.read} runs the HTTP opening handshake, so the hub's
 * handshake deadline bounds it and no timer is made per connection. Then
 * every binary message holds exactly one goim frame; pings are answered; a
 * client's close is answered and ends the stream.
 *
 * On the write side replies go out as binary messages of their own and a run
 * of pushes flushed together as one message holding one op-9 (Raw) frame
 * whose body is the frames back to back, as goim does.
 *
 * @example
 * ```ts ignore
 * import { Comet } from "../server/comet.ts";
 * import { WsWire } from "./websocket.ts";
 *
 * const comet = new Comet();
 * using listener = Deno.listen({ port: 3102 });
 * const conn = await listener.accept();
 * await comet.serve(new WsWire(conn, { maxBody: comet.maxBody }));
 * ```
 */
export class WsWire extends StreamWire implements Wire {
  /**
   * Where every WebSocket wire takes its read buffer from: views into shared
   * slabs, not an `ArrayBuffer` each. A wire gives its buffer back once
   * closed with no read pending.
   */
  static readonly readBuffers: BufferPool = new BufferPool(_READ_SIZE);

  #info: ConnInfo;
  #parser: WebSocketParser;
  #path: string;
  #maxHeadSize: number;
  #state: _State;
  /** A close frame has gone out (or is in the buffer being written): no more data after it. */
  #closeSent = false;
  /** The buffer `encode` last returned ends with a close frame. */
  #closeEncoded = false;
  #closeCode: number = WsCloseCode.Normal;
  #closeReason = "";
  #writing = false;
  /** Writes waiting for the one under way; made on first need. */
  #waiters: (() => void)[] | undefined;
  #traffic: TrafficCounter;
  #proxies: TrustedProxies;
  /** Set by the hub for a proxied connection until the upgrade names its client. */
  #clientKnown: (() => void) | undefined;

  /**
   * Wraps an accepted connection that has not been upgraded yet (or has, with
   * `options.upgraded`). Its bytes after the opening handshake count towards
   * {@linkcode trafficCounter} of its transport name.
   *
   * @throws {RangeError} When `maxBody` or `maxHeadSize` is out of range.
   * @throws {TypeError} When `path` does not start with `/`.
   */
  constructor(conn: Deno.Conn, options: WsWireOptions = {}) {
    const maxBody = options.maxBody ?? DEFAULT_MAX_BODY;
    if (!Number.isSafeInteger(maxBody) || maxBody < 0 || maxBody > 0x7fffffff - HEADER_SIZE) {
      throw new RangeError(`Max body must be a non-negative integer: ${maxBody}`);
    }
    super(conn);
    this.#parser = new WebSocketParser({ maxMessage: HEADER_SIZE + maxBody });
    this.#path = options.path ?? "/sub";
    if (!this.#path.startsWith("/")) throw new TypeError(`Path must start with "/": ${this.#path}`);
    this.#maxHeadSize = options.maxHeadSize ?? 8192;
    if (!Number.isSafeInteger(this.#maxHeadSize) || this.#maxHeadSize < 16) {
      throw new RangeError(`Max head size must be an integer of at least 16: ${this.#maxHeadSize}`);
    }
    this.#info = {
      transport: options.transport ?? "ws",
      // Deno's own address object rather than a copy: 40 bytes less per connection.
      remoteAddr: conn.remoteAddr as Deno.NetAddr,
    };
    this.#traffic = trafficCounter(this.#info.transport);
    this.#proxies = options.proxies ?? _NO_PROXIES;
    if (options.upgraded) {
      this.#info = _withHeaders(this.#info, options.upgraded.headers, this.#proxies);
      this.#parser.push(options.upgraded.rest ?? EMPTY);
      this.#state = "open";
    } else {
      this.#state = "handshake";
    }
  }

  /** Transport facts; `headers` is filled in once the handshake is done. */
  get info(): ConnInfo {
    return this.#info;
  }

  /**
   * Reads the next goim frame; `null` once the peer closed (its close frame
   * answered), left, or the wire was closed.
   *
   * @throws {HandshakeError} When the HTTP request was refused; the refusal
   * was sent and the socket closed.
   * @throws {WebSocketError} When the peer breaks the WebSocket protocol, or a
   * message is not exactly one well-formed goim frame.
   */
  override read(): Promise<Frame | null> {
    if (this.#state === "handshake") {
      return this.#upgrade().then((ok) => {
        if (!ok) return null;
        const known = this.#clientKnown;
        this.#clientKnown = undefined;
        known?.();
        return this.read();
      });
    }
    return super.read();
  }

  /** Calls `known` once the upgrade has named the client (see `Wire._whenClientKnown`). */
  _whenClientKnown(known: () => void): void {
    if (this.#state === "handshake") this.#clientKnown = known;
    else known();
  }

  /** The read buffers' pool. */
  protected override get _pool(): BufferPool {
    return WsWire.readBuffers;
  }

  /** Counts the bytes read and hands them to the WebSocket parser. */
  protected override _take(bytes: Uint8Array): void {
    this.#traffic.bytesIn += bytes.length;
    this.#parser.push(bytes);
  }

  /** Whether {@linkcode WsWire.close} was called. */
  protected override _isClosed(): boolean {
    return this.#state === "closed";
  }

  /**
   * Takes parser events until a goim frame is in (the frame), the stream
   * ended (`null`), a control frame has to be answered first (a promise:
   * `true` to step on once it is out, `false` when that was the end), or more
   * bytes are needed (`undefined`).
   */
  protected override _step(): Frame | null | Promise<boolean> | undefined {
    const parser = this.#parser;
    for (;;) {
      if (this.#state !== "open") return null;
      let event: WsEvent | undefined;
      try {
        event = parser.next();
      } catch (err) {
        if (err instanceof WebSocketError) this.#failWith(err);
        throw err;
      }
      if (event === undefined) return undefined;
      if (event === WsOpcode.Binary) {
        // After our close frame, data is only drained until the peer's close comes.
        if (!this.#closeSent) return this.#frame(parser.payload);
      } else if (event === WsOpcode.Ping) {
        if (!this.#closeSent) {
          return this.#control(encodePong(parser.payload));
        }
      } else if (event === WsOpcode.Close) {
        if (!this.#closeSent) {
          this.#closeSent = true;
          const code = parser.closeCode;
          return this.#control(encodeClose(code === WsCloseCode.NoStatus ? undefined : code))
            .then(_ended);
        }
        return null;
      }
    }
  }

  /**
   * The flush as goim's WebSocket clients read it (see
   * {@linkcode encodeGoimMessages}): replies as messages of their own, each
   * run of pushes as one message, several of them inside one op-9 frame. When
   * the flush ends with op 6 (the hub's goodbye, always last), the close
   * frame is appended so it leaves with the same write.
   */
  encode(chunks: readonly Uint8Array[], count: number, _bytes: number): Uint8Array {
    let tail: Uint8Array = EMPTY;
    const last = chunks[count - 1]!;
    if (
      this.#state === "open" && !this.#closeSent && last.length >= HEADER_SIZE &&
      _int32(last, 8) === Op.DisconnectReply
    ) {
      tail = encodeClose(this.#closeCode, this.#closeReason);
      this.#closeEncoded = true;
    }
    if (tail.length === 0) {
      const cached = _batches.get(chunks, count);
      if (cached !== undefined) return cached;
    }
    const out = encodeGoimMessages(chunks, count, _WS_BINARY, tail.length);
    if (tail.length > 0) out.set(tail, out.length - tail.length);
    else _batches.set(chunks, count, out);
    return out;
  }

  /**
   * The same for every WebSocket wire: see {@linkcode Wire.sharedEncoding}.
   * Only a run ending in op 6 adds the close frame, and such runs are not shared.
   */
  get sharedEncoding(): object {
    return _SHARED_ENCODING;
  }

  /**
   * Writes all of `data`, after any control frame being written. Before the
   * upgrade, and after a close frame, data is dropped: it has nowhere to go.
   *
   * Resolves `true` when the socket took only part of it at first.
   *
   * @throws {Deno.errors.BadResource} When the wire was closed.
   */
  write(data: Uint8Array): Promise<boolean | void> {
    if (this.#state === "closed") {
      return Promise.reject(new Deno.errors.BadResource("WebSocket wire is closed"));
    }
    if (this.#state !== "open") return Promise.resolve();
    if (this.#closeEncoded) {
      this.#closeEncoded = false;
      // The peer's close may have been answered since the buffer was encoded.
      if (this.#closeSent) return Promise.resolve();
      this.#closeSent = true;
    } else if (this.#closeSent) {
      return Promise.resolve();
    }
    return this.#send(data);
  }

  /**
   * Closes the connection. An upgraded connection that has not had a close
   * frame gets one (1000, or the code of the violation read last) when no
   * write is under way; the socket closes once it is out, or after a short
   * grace if the peer does not read. Otherwise the socket closes at once.
   * Idempotent.
   */
  close(): void {
    const state = this.#state;
    if (state === "closed") return;
    this.#state = "closed";
    if (this.#waiters !== undefined) { for (const wake of this.#waiters.splice(0)) wake(); }
    this._giveBack();
    if (state === "open" && !this.#closeSent && !this.#writing) {
      this.#closeSent = true;
      _lingerClose(this._conn, encodeClose(this.#closeCode, this.#closeReason), this.#traffic);
      return;
    }
    closeQuietly(this._conn);
  }

  /** Runs the opening handshake; false when the connection ended during it. */
  async #upgrade(): Promise<boolean> {
    let upgrade;
    try {
      upgrade = await acceptUpgrade(this._conn, {
        path: this.#path,
        maxHeadSize: this.#maxHeadSize,
      });
    } catch (err) {
      this.close();
      // A refusal has been answered; anything else means the socket went away.
      if (err instanceof HandshakeError) throw err;
      return false;
    }
    if (upgrade === null || this.#state !== "handshake") {
      this.close();
      return false;
    }
    // A new object, headers in it from the start: adding the property later
    // would give every connection's info a separate property store.
    this.#info = _withHeaders(this.#info, upgrade.headers, this.#proxies);
    this.#parser.push(upgrade.rest);
    this.#state = "open";
    return true;
  }

  /** The goim frame a binary message holds, which must be exactly one. */
  #frame(message: Uint8Array): Frame {
    try {
      return decodeGoimMessage(message);
    } catch (err) {
      this.#failWith(err as WebSocketError);
      throw err;
    }
  }

  #failWith(err: WebSocketError): void {
    this.#closeCode = err.code;
    this.#closeReason = err.message;
  }

  /** Writes a control frame from the reader's side; false when the socket is gone. */
  async #control(frame: Uint8Array): Promise<boolean> {
    try {
      await this.#send(frame);
      return true;
    } catch {
      return false;
    }
  }

  /** One writer at a time: the hub's writer and the reader's control frames never interleave. */
  async #send(data: Uint8Array): Promise<boolean> {
    while (this.#writing) {
      await new Promise<void>((resolve) => (this.#waiters ??= []).push(resolve));
      if (this.#state === "closed") throw new Deno.errors.BadResource("WebSocket wire is closed");
    }
    this.#writing = true;
    try {
      return await writeAll(this._conn, data, this.#traffic);
    } finally {
      this.#writing = false;
      const waiting = this.#waiters;
      if (waiting !== undefined && waiting.length > 0) waiting.shift()!();
    }
  }
}

/** Where and how to accept WebSocket connections. */
export interface WsListenOptions extends ListenOptions {
  /** The path upgrades are accepted on. Default `/sub`, as goim. */
  path?: string;
  /** Largest HTTP request head in bytes. Default 8 KiB. */
  maxHeadSize?: number;
  /** Serve over TLS with this certificate (transport `"wss"`). */
  tls?: TlsCertificate;
}

/**
 * Listens on TCP (or TLS) for WebSocket upgrades on `path` (default `/sub`)
 * and serves goim's binary protocol over them with `comet`. Each
 * connection's HTTP handshake runs inside its session, under the hub's
 * handshake deadline.
 *
 * @throws {TypeError} When `path` does not start with `/` (before binding).
 *
 * @example
 * ```ts ignore
 * import { Comet } from "../server/comet.ts";
 * import { listenWs } from "./websocket.ts";
 *
 * const comet = new Comet();
 * const acceptor = listenWs(comet, { hostname: "127.0.0.1", port: 3102 });
 * ```
 */
export function listenWs(comet: Comet, options: WsListenOptions): Acceptor {
  if (options.path !== undefined && !options.path.startsWith("/")) {
    throw new TypeError(`Path must start with "/": ${options.path}`);
  }
  const transport = options.tls ? "wss" : "ws";
  const wireOptions: WsWireOptions = {
    maxBody: comet.maxBody,
    transport,
    proxies: comet.trustedProxies,
  };
  if (options.path !== undefined) wireOptions.path = options.path;
  if (options.maxHeadSize !== undefined) wireOptions.maxHeadSize = options.maxHeadSize;
  return new Acceptor(
    comet,
    bindListener(options, options.tls, transport),
    transport,
    (conn) => new WsWire(conn, wireOptions),
  );
}
