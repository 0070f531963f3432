import { _int32 } from "../protocol/_int.ts";
import { encodeFrame, type Frame } from "../protocol/frame.ts";
import { isReplyOp, Op } from "../protocol/op.ts";
import { AuthError } from "./auth_error.ts";
import { reconnectDelay, type ReconnectOptions, reconnectPolicy } from "../reconnect/backoff.ts";
import { ConnectionClosedError } from "./connection_closed_error.ts";
import type { Link, LinkOpener } from "./link.ts";
import { MessageStream } from "./message_stream.ts";
import { readFrames } from "./read_frames.ts";
import { RequestTimeoutError } from "./request_timeout_error.ts";
import { openWsLink } from "./ws_link.ts";

/**
 * Where a {@linkcode Client} is in its life: `connecting` until the first
 * connection is authenticated, `open` while it can send and request,
 * `reconnecting` between a dropped connection and the next one being ready,
 * `closed` for good.
 */
export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

/** What {@linkcode Client.onState} listeners get. */
export interface StateChange {
  /** The new state. */
  state: ClientState;
  /** The state before. */
  previous: ClientState;
  /** Why the connection was lost or the client closed, where there was a reason. */
  reason?: Error;
}

/**
 * goim's auth fields. The client sends them as goim's auth JSON,
 * `{"mid","key","room_id","platform","accepts"}`.
 */
export interface GoimAuth {
  /** User id. Default 0. */
  mid?: number;
  /** Connection key; empty lets the server generate one. Default empty. */
  key?: string;
  /** Room to join, e.g. `live://1000` (`room_id`). Default none. */
  roomId?: string;
  /** Client platform, e.g. `web`. Default empty. */
  platform?: string;
  /** Business ops to watch from the start. Default none. */
  accepts?: number[];
}

/** Options for {@linkcode Client} and {@linkcode connect}. Durations are in milliseconds. */
export interface ClientOptions extends GoimAuth {
  /**
   * The auth (op 7) body as it is, instead of the goim fields: bytes, text
   * (sent as UTF-8) or an object (sent as JSON). Sent again on every reconnect.
   */
  auth?: Uint8Array | string | object;
  /**
   * Interval between heartbeats (op 2). A heartbeat not answered by the next
   * one counts the connection as dead. Keep it well under the server's
   * heartbeat timeout (goim: 4 min; Comet: 8 min by default). Default 30 000.
   */
  heartbeat?: number;
  /** How to reconnect after a drop; `false` closes the client instead. */
  reconnect?: false | ReconnectOptions;
  /** Default timeout of {@linkcode Client.request} and the other calls that await a reply. Default 10 000. */
  requestTimeout?: number;
  /** How long one connection attempt may take to open and authenticate. Default 10 000. */
  connectTimeout?: number;
  /**
   * While the client is connecting or reconnecting, hold requests (and
   * sub, unsub, changeRoom) until it is open instead of failing them at once
   * with {@linkcode ConnectionClosedError}. Their timeout still runs. Default `false`.
   */
  queueWhileReconnecting?: boolean;
  /** Pushes buffered per {@linkcode Client.messages} stream before the oldest is dropped. Default 1024. */
  messageBuffer?: number;
  /** Largest frame body accepted over TCP, in bytes. Default 16 MiB. */
  maxBody?: number;
  /** Extra PEM root certificates to trust for `tls://` (and `wss://` on Deno). */
  caCerts?: string[];
  /**
   * Opens connections. Default: {@linkcode openWsLink}, WebSocket only, which
   * works in browsers; {@linkcode connect} (Deno) passes
   * {@linkcode openLink}, which adds `tcp://` and `tls://`.
   */
  link?: LinkOpener;
  /** Aborting closes the client as {@linkcode Client.close} does. */
  signal?: AbortSignal;
}

/** Options for one {@linkcode Client.request}. */
export interface RequestOptions {
  /** Milliseconds to wait for the reply. Default: the client's `requestTimeout`. */
  timeout?: number;
  /** Aborting rejects the request with the signal's reason; a late reply is ignored. */
  signal?: AbortSignal;
}

/** Options for {@linkcode Client.messages} and {@linkcode Client.jsonMessages}. */
export interface MessagesOptions {
  /** Pushes buffered before the oldest is dropped. Default: the client's `messageBuffer`. */
  buffer?: number;
}

/** Receives one frame; see {@linkcode Client.on}. */
export type FrameHandler = (frame: Frame) => void;

/** A push whose body was parsed as JSON; see {@linkcode Client.jsonMessages}. */
export interface JsonMessage<T = unknown> {
  /** The push's operation. */
  op: number;
  /** The parsed body, e.g. `{ act, data }`. */
  value: T;
}

/** Counters since the client was created. */
export interface ClientStats {
  /** Connections that opened (authenticated and restored). */
  opens: number;
  /** Of those, the ones after a drop. */
  reconnects: number;
  /** Heartbeats that went unanswered and cost the connection. */
  missedHeartbeats: number;
  /** Pushes dropped by lagging {@linkcode Client.messages} streams. */
  dropped: number;
  /** op-9 batches unpacked. */
  batches: number;
  /** Replies that matched no request in flight (late after a timeout or abort). */
  lateReplies: number;
}

interface _Pending {
  op: number;
  reply: number;
  timeout: number;
  deadline: number;
  resolve: (body: Uint8Array) => void;
  reject: (error: Error) => void;
  /** The link it went out on; `undefined` while it waits for the client to open. */
  link: Link | undefined;
  /** The encoded frame, kept only while it waits to be sent. */
  frame: Uint8Array | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const _encoder = new TextEncoder();
const _decoder = new TextDecoder();
const _MAX_SEQ = 0x7fffffff;
// Every heartbeat is the same 16 bytes; the server echoes seq 0, which no request uses.
const _HEARTBEAT = encodeFrame(Op.Heartbeat, 0);
/**
 * What Comet sends connections still in their handshake when it stops. A
 * DisconnectReply before the AuthReply is otherwise a refusal; this one is
 * not, and a reconnecting client must keep trying rather than give up.
 */
const _SHUTTING_DOWN = "server shutting down";
/** What a failed JSON parse returns, so that `null` and the like stay values. */
const _NOT_JSON: unique symbol = Symbol("not JSON");

function _isInt32(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= -0x80000000 && n <= _MAX_SEQ;
}

function _positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(value > 0 && Number.isFinite(value))) {
    throw new RangeError(`${name} must be a positive number: ${value}`);
  }
  return value;
}

function _bytes(body: Uint8Array | string): Uint8Array {
  if (typeof body === "string") return _encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  throw new TypeError(`Body must be a Uint8Array or a string: ${typeof body}`);
}

function _json(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`Value cannot be sent as JSON: ${typeof value}`);
  return text;
}

function _asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function _opList(ops: readonly number[]): Uint8Array {
  if (!Array.isArray(ops)) throw new TypeError("Ops must be an array of 32-bit integers");
  for (const op of ops) {
    if (!_isInt32(op)) throw new RangeError(`Op must be a 32-bit integer: ${op}`);
  }
  return _encoder.encode(ops.join(","));
}

function _authBody(options: ClientOptions): Uint8Array {
  const { auth, mid, key, roomId, platform, accepts } = options;
  const goim = [mid, key, roomId, platform, accepts].some((v) => v !== undefined);
  if (auth !== undefined) {
    if (goim) throw new TypeError("Pass either auth or the goim fields (mid, key, ...), not both");
    if (typeof auth === "string" || auth instanceof Uint8Array) return _bytes(auth);
    if (typeof auth !== "object" || auth === null) {
      throw new TypeError(`Auth must be bytes, a string or an object: ${typeof auth}`);
    }
    return _encoder.encode(_json(auth));
  }
  if (mid !== undefined && !(Number.isSafeInteger(mid) && mid >= 0)) {
    throw new RangeError(`User id must be a non-negative safe integer: ${mid}`);
  }
  for (const [name, v] of [["Key", key], ["Room id", roomId], ["Platform", platform]] as const) {
    if (v !== undefined && typeof v !== "string") throw new TypeError(`${name} must be a string`);
  }
  if (accepts !== undefined) _opList(accepts);
  return _encoder.encode(JSON.stringify({
    mid: mid ?? 0,
    key: key ?? "",
    room_id: roomId ?? "",
    platform: platform ?? "",
    accepts: accepts ?? [],
  }));
}

/**
 * A goim client with one connection at a time: it authenticates, heartbeats,
 * matches replies to requests by seq, unpacks op-9 batches and reconnects on
 * its own, restoring its subscriptions and room. It runs in Deno and, over
 * WebSocket, in browsers.
 *
 * Calls that need the connection (`send`, `request`, `sub`, `unsub`,
 * `changeRoom`) fail at once with {@linkcode ConnectionClosedError} while the
 * client is not open, unless `queueWhileReconnecting` holds requests until it
 * is. Requests in flight when a connection drops fail at once with it: they
 * may or may not have reached the server, so resending is the caller's call.
 *
 * The first connection attempt is not retried: if it fails,
 * {@linkcode Client.opened} rejects and the client closes. Once open, a
 * dropped connection, a server's DisconnectReply (op 6) or an unanswered
 * heartbeat starts reconnecting with exponential backoff and jitter. A
 * refused authentication ({@linkcode AuthError}) is never retried.
 *
 * Without a `link` option the client speaks WebSocket only, so this module
 * loads in a browser; {@linkcode connect} adds `tcp://` and `tls://` on Deno.
 *
 * @example
 * ```ts ignore
 * import { Client } from "../../mod.ts";
 *
 * await using client = new Client("ws://127.0.0.1:3102/sub", {
 *   mid: 42,
 *   roomId: "live://1000",
 *   accepts: [1000],
 * });
 * await client.opened;
 * client.on(1000, (frame) => console.log(new TextDecoder().decode(frame.body)));
 * console.log(new TextDecoder().decode(await client.request("hello")));
 * ```
 */
export class Client implements AsyncDisposable {
  /**
   * Settles once the first connection is authenticated and ready; rejects
   * (and the client closes) when it fails: with {@linkcode AuthError} when
   * refused, {@linkcode RequestTimeoutError} past `connectTimeout`,
   * {@linkcode ConnectionClosedError} otherwise, or the signal's reason.
   */
  readonly opened: Promise<void>;
  /** Where the client connects. */
  readonly url: URL;

  #open: LinkOpener;
  #authBody: Uint8Array;
  #heartbeat: number;
  #reconnect: Required<ReconnectOptions> | false;
  #requestTimeout: number;
  #connectTimeout: number;
  #queueWhileReconnecting: boolean;
  #messageBuffer: number;
  #maxBody: number | undefined;
  #caCerts: string[] | undefined;

  #state: ClientState = "connecting";
  #link: Link | undefined;
  #seq = 0;
  #authSeq = 0;
  #pending = new Map<number, _Pending>();
  #sweepTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepAt = Infinity;
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  #heartbeatDue = false;
  #online = 0;
  #handlers = new Map<number, Set<FrameHandler>>();
  #stateListeners = new Set<(change: StateChange) => void>();
  #errorListeners = new Set<(error: Error) => void>();
  #streams = new Set<MessageStream<Frame>>();
  #subs = new Set<number>();
  #unsubs = new Set<number>();
  #room: string | undefined;
  #stop = new AbortController();
  #closing: Promise<void> | undefined;
  #running: Promise<void>;
  #signal: AbortSignal | undefined;
  #resolveOpened!: () => void;
  #rejectOpened!: (reason: unknown) => void;
  #stats: ClientStats = {
    opens: 0,
    reconnects: 0,
    missedHeartbeats: 0,
    dropped: 0,
    batches: 0,
    lateReplies: 0,
  };

  /**
   * Creates the client and starts connecting; await
   * {@linkcode Client.opened} before calling anything that needs the connection.
   *
   * @param url `ws://host:port/sub` or `wss://...`; with a `link` that supports
   * them (see {@linkcode connect}), `tcp://host:port` or `tls://host:port`.
   * @param options Auth, timings, reconnection and the rest.
   * @throws {TypeError} When the URL or the auth is unusable.
   * @throws {RangeError} When a numeric option is out of range.
   */
  constructor(url: string | URL, options: ClientOptions = {}) {
    this.url = new URL(url);
    const scheme = this.url.protocol;
    if (scheme !== "tcp:" && scheme !== "tls:" && scheme !== "ws:" && scheme !== "wss:") {
      throw new TypeError(`URL must be tcp://, tls://, ws:// or wss://: ${this.url.href}`);
    }
    if (!options.link && (scheme === "tcp:" || scheme === "tls:")) {
      // Reaching for the TCP link here would pull Deno APIs into browser bundles.
      throw new TypeError(
        `URL needs a link option (openLink) or connect() from mod.ts: ${this.url.href}`,
      );
    }
    this.#open = options.link ?? openWsLink;
    this.#authBody = _authBody(options);
    this.#heartbeat = _positive("Heartbeat interval", options.heartbeat, 30_000);
    this.#reconnect = options.reconnect === false ? false : reconnectPolicy(options.reconnect);
    this.#requestTimeout = _positive("Request timeout", options.requestTimeout, 10_000);
    this.#connectTimeout = _positive("Connect timeout", options.connectTimeout, 10_000);
    this.#queueWhileReconnecting = options.queueWhileReconnecting ?? false;
    this.#messageBuffer = options.messageBuffer ?? 1024;
    if (!(Number.isSafeInteger(this.#messageBuffer) && this.#messageBuffer > 0)) {
      throw new RangeError(`Message buffer must be a positive integer: ${this.#messageBuffer}`);
    }
    this.#maxBody = options.maxBody;
    this.#caCerts = options.caCerts;
    this.opened = new Promise((resolve, reject) => {
      this.#resolveOpened = resolve;
      this.#rejectOpened = reject;
    });
    // Whoever never awaits `opened` must not get an unhandled rejection from it.
    this.opened.catch(() => {});
    this.#signal = options.signal;
    if (this.#signal?.aborted) {
      this.#running = Promise.resolve();
      this.#abort();
      return;
    }
    this.#signal?.addEventListener("abort", this.#abort, { once: true });
    this.#running = this.#run();
  }

  /** The client's state now; see {@linkcode ClientState}. */
  get state(): ClientState {
    return this.#state;
  }

  /** Members online in the client's room, from the last heartbeat reply; 0 before one. */
  get online(): number {
    return this.#online;
  }

  /** Requests waiting for their reply (or, when queued, for the client to open). */
  get pending(): number {
    return this.#pending.size;
  }

  /** Bytes sent but not yet handed to the network; 0 when not connected. */
  get bufferedAmount(): number {
    return this.#link?.bufferedAmount ?? 0;
  }

  /** Counters since the client was created. The object is live. */
  get stats(): Readonly<ClientStats> {
    return this.#stats;
  }

  /**
   * Calls `handler` with every frame of operation `op` the server sends:
   * pushes (the inner frames of op-9 batches included) and replies alike.
   * A handler that throws is reported to {@linkcode Client.onError}.
   *
   * @returns A function that removes the handler.
   */
  on(op: number, handler: FrameHandler): () => void {
    if (!_isInt32(op)) throw new RangeError(`Op must be a 32-bit integer: ${op}`);
    if (typeof handler !== "function") throw new TypeError("Handler must be a function");
    let set = this.#handlers.get(op);
    if (set === undefined) this.#handlers.set(op, set = new Set());
    const handlers = set;
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
      if (handlers.size === 0 && this.#handlers.get(op) === handlers) this.#handlers.delete(op);
    };
  }

  /**
   * Like {@linkcode Client.on}, with the body parsed as JSON (for the common
   * `{ act, data }` shape). A body that is not JSON is reported to
   * {@linkcode Client.onError} and skipped.
   *
   * @returns A function that removes the handler.
   */
  onJson<T = unknown>(op: number, handler: (value: T, frame: Frame) => void): () => void {
    if (typeof handler !== "function") throw new TypeError("Handler must be a function");
    return this.on(op, (frame) => {
      const value = this.#parse<T>(frame);
      if (value !== _NOT_JSON) handler(value as T, frame);
    });
  }

  /** Calls `listener` on every state change. Returns a function that removes it. */
  onState(listener: (change: StateChange) => void): () => void {
    this.#stateListeners.add(listener);
    return () => void this.#stateListeners.delete(listener);
  }

  /**
   * Calls `listener` with problems that have no caller to reject: failed
   * reconnection attempts, throwing handlers, pushes that are not JSON,
   * malformed frames. Without listeners they are dropped.
   *
   * @returns A function that removes the listener.
   */
  onError(listener: (error: Error) => void): () => void {
    this.#errorListeners.add(listener);
    return () => void this.#errorListeners.delete(listener);
  }

  /**
   * The pushes the server sends from now on, as an async iterator: every
   * frame that is not a reply (business ops ≥ 1000 and the like), op-9
   * batches unpacked. Each stream buffers up to `buffer` pushes (default the
   * client's `messageBuffer`, 1024); when its consumer lags further, the
   * oldest are dropped and counted in the stream's `dropped` and the
   * client's `stats.dropped`. The stream ends when the client closes;
   * breaking out of the loop unregisters it.
   */
  messages(options: MessagesOptions = {}): MessageStream<Frame> {
    const stream = new MessageStream<Frame>(
      options.buffer ?? this.#messageBuffer,
      () => void this.#streams.delete(stream),
    );
    if (this.#state === "closed" || this.#closing) stream.end();
    else this.#streams.add(stream);
    return stream;
  }

  /**
   * {@linkcode Client.messages} with each body parsed as JSON. A body that is
   * not JSON is reported to {@linkcode Client.onError} and skipped.
   */
  async *jsonMessages<T = unknown>(
    options: MessagesOptions = {},
  ): AsyncGenerator<JsonMessage<T>, void, undefined> {
    const stream = this.messages(options);
    try {
      for await (const frame of stream) {
        const value = this.#parse<T>(frame);
        if (value !== _NOT_JSON) yield { op: frame.op, value: value as T };
      }
    } finally {
      await stream.return();
    }
  }

  /**
   * Sends one frame of operation `op` with `body` (text is sent as UTF-8),
   * seq 0, without waiting for anything. The frame goes out whole, in call
   * order.
   *
   * @throws {ConnectionClosedError} When the client is not open.
   * @throws {RangeError} When `op` is not a 32-bit integer.
   */
  send(op: number, body: Uint8Array | string = ""): void {
    const frame = encodeFrame(op, 0, _bytes(body));
    const link = this.#link;
    if (this.#state !== "open" || link === undefined) throw this.#notOpen();
    link.send(frame);
  }

  /** Sends `value` as JSON in a frame of operation `op`; see {@linkcode Client.send}. */
  sendJson(op: number, value: unknown): void {
    this.send(op, _json(value));
  }

  /**
   * Sends `body` as an op-4 message with a fresh seq and resolves with the
   * body of the op-5 reply carrying the same seq. Any number may be in
   * flight at once; replies may come back in any order.
   *
   * @throws {RequestTimeoutError} When no reply came within the timeout.
   * @throws {ConnectionClosedError} When the client is not open, or the
   * connection dropped or the client closed before the reply.
   */
  request(body: Uint8Array | string, options: RequestOptions = {}): Promise<Uint8Array> {
    return this.#request(Op.SendMsg, body, options);
  }

  /**
   * Sends `value` as JSON with {@linkcode Client.request} and parses the
   * reply as JSON.
   *
   * @throws {SyntaxError} When the reply is not JSON.
   */
  async requestJson<T = unknown>(value: unknown, options: RequestOptions = {}): Promise<T> {
    const reply = await this.request(_json(value), options);
    try {
      return JSON.parse(_decoder.decode(reply)) as T;
    } catch (err) {
      throw new SyntaxError(`Reply is not JSON: ${_asError(err).message}`, { cause: err });
    }
  }

  /**
   * Starts watching business ops `ops` (op 14); resolves on the server's
   * reply. They are watched again after every reconnect.
   */
  async sub(ops: readonly number[], options: RequestOptions = {}): Promise<void> {
    await this.#request(Op.Sub, _opList(ops), options);
    for (const op of ops) {
      this.#subs.add(op);
      this.#unsubs.delete(op);
    }
  }

  /**
   * Stops watching business ops `ops` (op 16), including ones from
   * `accepts`; resolves on the server's reply. Stays so after reconnects.
   */
  async unsub(ops: readonly number[], options: RequestOptions = {}): Promise<void> {
    await this.#request(Op.Unsub, _opList(ops), options);
    for (const op of ops) {
      this.#subs.delete(op);
      this.#unsubs.add(op);
    }
  }

  /**
   * Moves the connection to `room` (op 12), e.g. `live://1000`; empty leaves
   * the room. Resolves on the server's reply. The room is joined again after
   * every reconnect.
   */
  async changeRoom(room: string, options: RequestOptions = {}): Promise<void> {
    if (typeof room !== "string") throw new TypeError(`Room must be a string: ${typeof room}`);
    await this.#request(Op.ChangeRoom, room, options);
    this.#room = room;
  }

  /**
   * Closes the client for good: stops heartbeats and reconnection, fails
   * requests still pending with {@linkcode ConnectionClosedError}, closes
   * the connection, ends message streams and settles in state `closed`.
   * Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    return this.#terminate(new ConnectionClosedError("Client closed"));
  }

  /** Same as {@linkcode Client.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- connection lifecycle -------------------------------------------------

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    let first = true;
    let failures = 0;
    while (!stop.aborted) {
      let link: Link;
      try {
        link = await this.#connect();
      } catch (err) {
        if (stop.aborted) return;
        const error = _asError(err);
        if (first || error instanceof AuthError || this.#reconnect === false) {
          void this.#terminate(error);
          return;
        }
        this.#report(error);
        failures++;
        if (failures >= this.#reconnect.maxAttempts) {
          void this.#terminate(
            new ConnectionClosedError(
              `Reconnecting gave up after ${failures} attempts: ${error.message}`,
              { cause: error },
            ),
          );
          return;
        }
        await this.#sleep(reconnectDelay(failures, this.#reconnect));
        continue;
      }
      if (first) this.#resolveOpened();
      else this.#stats.reconnects++;
      first = false;
      failures = 0;
      const reason = await link.closed;
      if (stop.aborted) return;
      if (this.#reconnect === false) {
        void this.#terminate(reason);
        return;
      }
      this.#setState("reconnecting", reason);
      await this.#sleep(reconnectDelay(0, this.#reconnect));
    }
  }

  /** One attempt: opens a link, authenticates, restores subscriptions and room, opens. */
  async #connect(): Promise<Link> {
    const stop = this.#stop.signal;
    const attempt = new AbortController();
    const onStop = () => attempt.abort(stop.reason);
    stop.addEventListener("abort", onStop, { once: true });
    const timeout = this.#connectTimeout;
    const timer = setTimeout(() => {
      attempt.abort(
        new RequestTimeoutError(
          `Connecting timed out: ${this.url.href} was not ready within ${timeout} ms`,
        ),
      );
    }, timeout);
    let link: Link | undefined;
    try {
      // Frames count only while this attempt's link is the client's link.
      const mine: { link?: Link } = {};
      const onFrame = (frame: Frame) => {
        if (mine.link !== undefined && mine.link === this.#link) this.#onFrame(mine.link, frame);
      };
      link = await this.#open(this.url, {
        onFrame,
        signal: attempt.signal,
        ...(this.#caCerts && { caCerts: this.#caCerts }),
        ...(this.#maxBody !== undefined && { maxBody: this.#maxBody }),
      });
      attempt.signal.throwIfAborted();
      this.#link = mine.link = link;
      const opened = link;
      link.closed.then((reason) => this.#lost(opened, reason));
      // The attempt's own deadline bounds these, so they get no timeout of their own.
      await this.#call(link, Op.Auth, this.#authBody, Infinity, attempt.signal);
      const restores: Promise<Uint8Array>[] = [];
      if (this.#subs.size > 0) {
        restores.push(this.#call(link, Op.Sub, _opList([...this.#subs]), Infinity, attempt.signal));
      }
      if (this.#unsubs.size > 0) {
        const ops = _opList([...this.#unsubs]);
        restores.push(this.#call(link, Op.Unsub, ops, Infinity, attempt.signal));
      }
      if (this.#room !== undefined) {
        const room = _encoder.encode(this.#room);
        restores.push(this.#call(link, Op.ChangeRoom, room, Infinity, attempt.signal));
      }
      await Promise.all(restores);
      attempt.signal.throwIfAborted();
      this.#ready(link);
      return link;
    } catch (err) {
      if (link !== undefined) {
        link.close(_asError(err));
        await link.closed;
      }
      throw err;
    } finally {
      clearTimeout(timer);
      stop.removeEventListener("abort", onStop);
    }
  }

  /** The link is authenticated and restored: start heartbeats, send queued requests, open. */
  #ready(link: Link): void {
    this.#stats.opens++;
    this.#heartbeatDue = false;
    this.#heartbeatTimer = setInterval(this.#beat, this.#heartbeat);
    this.#beat();
    for (const p of this.#pending.values()) {
      if (p.link !== undefined) continue;
      p.link = link;
      const frame = p.frame!;
      p.frame = undefined;
      // The link may already be closing; its loss then fails these like any other.
      this.#write(link, frame);
    }
    this.#setState("open");
  }

  /** A link ended: everything sent on it that still waits for a reply fails now. */
  #lost(link: Link, reason: Error): void {
    if (this.#link !== link) return;
    this.#link = undefined;
    this.#authSeq = 0;
    this.#stopHeartbeat();
    // Say so at once: calls made from here on fail (or queue) as "reconnecting".
    if (this.#state === "open" && this.#reconnect !== false && !this.#stop.signal.aborted) {
      this.#setState("reconnecting", reason);
    }
    let error: ConnectionClosedError | undefined;
    for (const [seq, p] of this.#pending) {
      if (p.link !== link) continue;
      error ??= new ConnectionClosedError(
        `Connection closed before the reply: ${reason.message}`,
        { cause: reason },
      );
      this.#settle(seq, p);
      p.reject(error);
    }
  }

  #beat = (): void => {
    const link = this.#link;
    if (link === undefined) return;
    if (this.#heartbeatDue) {
      this.#stats.missedHeartbeats++;
      link.close(
        new ConnectionClosedError(
          `Heartbeat reply missed: none within ${this.#heartbeat} ms`,
        ),
      );
      return;
    }
    this.#heartbeatDue = true;
    this.#write(link, _HEARTBEAT);
  };

  #stopHeartbeat(): void {
    if (this.#heartbeatTimer !== undefined) clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
  }

  #abort = (): void => {
    const signal = this.#signal!;
    void this.#terminate(
      new ConnectionClosedError("Client closed: the signal was aborted", { cause: signal.reason }),
      signal.reason,
    );
  };

  #terminate(reason: Error, openedReason: unknown = reason): Promise<void> {
    return this.#closing ??= this.#shutdown(reason, openedReason);
  }

  async #shutdown(reason: Error, openedReason: unknown): Promise<void> {
    this.#stop.abort(reason);
    this.#signal?.removeEventListener("abort", this.#abort);
    this.#rejectOpened(openedReason);
    this.#stopHeartbeat();
    const error = reason instanceof ConnectionClosedError
      ? reason
      : new ConnectionClosedError(`Client closed: ${reason.message}`, { cause: reason });
    for (const [seq, p] of this.#pending) {
      this.#settle(seq, p);
      p.reject(error);
    }
    const link = this.#link;
    link?.close(error);
    await this.#running;
    if (link !== undefined) await link.closed;
    clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    for (const stream of this.#streams) stream.end();
    this.#streams.clear();
    this.#setState("closed", reason);
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#stop.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  #setState(state: ClientState, reason?: Error): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    if (this.#stateListeners.size === 0) return;
    const change: StateChange = reason ? { state, previous, reason } : { state, previous };
    for (const listener of this.#stateListeners) {
      try {
        listener(change);
      } catch (err) {
        this.#report(_asError(err));
      }
    }
  }

  #report(error: Error): void {
    for (const listener of this.#errorListeners) {
      try {
        listener(error);
      } catch {
        // An error listener that throws has nowhere left to report to.
      }
    }
  }

  #notOpen(): ConnectionClosedError {
    if (this.#state === "closed" || this.#closing) {
      return new ConnectionClosedError("Client is closed");
    }
    if (this.#state === "open") {
      return new ConnectionClosedError("Connection is not open: it was lost");
    }
    return new ConnectionClosedError(`Connection is not open: the client is ${this.#state}`);
  }

  // --- inbound --------------------------------------------------------------

  #onFrame(link: Link, frame: Frame): void {
    const { op, seq, body } = frame;
    switch (op) {
      case Op.Raw:
        this.#stats.batches++;
        try {
          readFrames(body, this.#onInner);
        } catch (err) {
          link.close(_asError(err));
        }
        return;
      case Op.HeartbeatReply:
        this.#heartbeatDue = false;
        if (body.length >= 4) {
          this.#online = _int32(body, 0);
        }
        break;
      case Op.AuthReply:
      case Op.SendMsgReply:
      case Op.ChangeRoomReply:
      case Op.SubReply:
      case Op.UnsubReply: {
        const p = this.#pending.get(seq);
        if (p !== undefined && p.reply === op && p.link === link) {
          if (op === Op.AuthReply) this.#authSeq = 0;
          this.#settle(seq, p);
          p.resolve(body);
        } else {
          this.#stats.lateReplies++;
        }
        break;
      }
      case Op.DisconnectReply: {
        const text = _decoder.decode(body);
        const auth = this.#authSeq !== 0 && text !== _SHUTTING_DOWN
          ? this.#pending.get(this.#authSeq)
          : undefined;
        let error: Error;
        if (auth !== undefined) {
          error = new AuthError(text);
          this.#settle(this.#authSeq, auth);
          this.#authSeq = 0;
          auth.reject(error);
        } else {
          error = new ConnectionClosedError(`Server disconnected: ${text || "no reason given"}`);
        }
        // The server closes next; closing first keeps later frames from counting.
        this.#deliver(frame);
        link.close(error);
        return;
      }
    }
    this.#deliver(frame);
  }

  /** A frame from inside an op-9 batch; batches only come from the current link. */
  #onInner = (frame: Frame): void => {
    const link = this.#link;
    if (link !== undefined) this.#onFrame(link, frame);
  };

  #deliver(frame: Frame): void {
    const handlers = this.#handlers.get(frame.op);
    if (handlers !== undefined) {
      for (const handler of handlers) {
        try {
          handler(frame);
        } catch (err) {
          this.#report(_asError(err));
        }
      }
    }
    if (this.#streams.size === 0 || isReplyOp(frame.op)) return;
    for (const stream of this.#streams) {
      if (!stream.push(frame)) this.#stats.dropped++;
    }
  }

  #parse<T>(frame: Frame): T | typeof _NOT_JSON {
    try {
      return JSON.parse(_decoder.decode(frame.body)) as T;
    } catch (err) {
      this.#report(
        new SyntaxError(
          `Body of op ${frame.op} is not JSON: ${_asError(err).message}`,
          { cause: err },
        ),
      );
      return _NOT_JSON;
    }
  }

  // --- requests -------------------------------------------------------------

  #request(op: number, body: Uint8Array | string, options: RequestOptions): Promise<Uint8Array> {
    let bytes: Uint8Array;
    let timeout: number;
    try {
      bytes = _bytes(body);
      timeout = _positive("Request timeout", options.timeout, this.#requestTimeout);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closing) return Promise.reject(this.#notOpen());
    const link = this.#link;
    if (this.#state === "open" && link !== undefined) {
      return this.#call(link, op, bytes, timeout, options.signal);
    }
    if (this.#queueWhileReconnecting) {
      return this.#call(undefined, op, bytes, timeout, options.signal);
    }
    return Promise.reject(this.#notOpen());
  }

  /** Registers a request and sends it on `link`, or queues it when `link` is undefined. */
  #call(
    link: Link | undefined,
    op: number,
    body: Uint8Array,
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const seq = this.#nextSeq();
    const frame = encodeFrame(op, seq, body);
    return new Promise((resolve, reject) => {
      const p: _Pending = {
        op,
        reply: op === Op.Auth ? Op.AuthReply : op + 1,
        timeout,
        deadline: performance.now() + timeout,
        resolve,
        reject,
        link,
        frame: link === undefined ? frame : undefined,
        signal,
        onAbort: undefined,
      };
      if (signal !== undefined) {
        p.onAbort = () => {
          if (this.#pending.get(seq) !== p) return;
          this.#settle(seq, p);
          reject(signal.reason);
        };
        signal.addEventListener("abort", p.onAbort, { once: true });
      }
      this.#pending.set(seq, p);
      if (op === Op.Auth) this.#authSeq = seq;
      if (p.deadline !== Infinity) this.#armSweep(p.deadline);
      if (link !== undefined) this.#write(link, frame);
    });
  }

  /** The next seq in 1..2^31-1, wrapping, skipping any still in flight. */
  #nextSeq(): number {
    if (this.#pending.size >= _MAX_SEQ) throw new RangeError("Every sequence number is in flight");
    let seq = this.#seq;
    do seq = seq >= _MAX_SEQ ? 1 : seq + 1; while (this.#pending.has(seq));
    return this.#seq = seq;
  }

  #write(link: Link, frame: Uint8Array): void {
    try {
      link.send(frame);
    } catch {
      // The link is closing; its loss fails whatever was waiting on it.
    }
  }

  #settle(seq: number, p: _Pending): void {
    this.#pending.delete(seq);
    if (p.onAbort !== undefined) p.signal!.removeEventListener("abort", p.onAbort);
    if (this.#pending.size === 0 && this.#sweepTimer !== undefined) {
      clearTimeout(this.#sweepTimer);
      this.#sweepTimer = undefined;
    }
  }

  // One timer serves every request's deadline: it is armed for the earliest
  // known one and, when it fires, fails what is due and re-arms for the rest.
  #armSweep(deadline: number): void {
    if (this.#sweepTimer !== undefined && deadline >= this.#sweepAt) return;
    clearTimeout(this.#sweepTimer);
    this.#sweepAt = deadline;
    this.#sweepTimer = setTimeout(this.#sweep, Math.max(0, deadline - performance.now()));
  }

  #sweep = (): void => {
    this.#sweepTimer = undefined;
    // Timers may fire a hair early against performance.now(); a millisecond of slack.
    const now = performance.now() + 1;
    let next = Infinity;
    for (const [seq, p] of this.#pending) {
      if (p.deadline <= now) {
        this.#settle(seq, p);
        const what = p.op === Op.Auth ? "auth" : `op ${p.op} seq ${seq}`;
        p.reject(
          new RequestTimeoutError(`Request timed out: no reply to ${what} within ${p.timeout} ms`),
        );
      } else if (p.deadline < next) {
        next = p.deadline;
      }
    }
    if (next !== Infinity) this.#armSweep(next);
  };
}
