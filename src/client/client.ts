import { encodeFrame, type Frame } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import { reconnectPolicy } from "../reconnect/backoff.ts";
import { Reconnector } from "../reconnect/reconnector.ts";
import {
  _aborted,
  _asError,
  _authBody,
  _bytes,
  _clientUrl,
  _connectTimedOut,
  _decoder,
  _emptyStats,
  _gaveUp,
  _json,
  _opener,
  _opList,
  _parseReply,
  _positive,
} from "./_util.ts";
import { AuthError } from "./auth_error.ts";
import type {
  ClientFrame,
  ClientOptions,
  ClientState,
  ClientStats,
  FrameHandler,
  JsonMessage,
  MessagesOptions,
  RequestOptions,
  StateChange,
  StreamLost,
  StreamPositions,
} from "./client_options.ts";
import { ConnectionClosedError } from "./connection_closed_error.ts";
import { FrameRouter, NOT_JSON } from "./frame_router.ts";
import { Heartbeat } from "./heartbeat.ts";
import type { Link } from "./link.ts";
import type { MessageStream } from "./message_stream.ts";
import { readFrames } from "./read_frames.ts";
import { RequestTable } from "./request_table.ts";
import { StreamTracker } from "./stream_tracker.ts";
import { WatchState } from "./watch_state.ts";

export type * from "./client_options.ts";

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

  #open: (onFrame: (frame: Frame) => void, signal: AbortSignal) => Promise<Link>;
  #authBody: (recover: StreamPositions, room: string | undefined) => Uint8Array;
  #streams: StreamTracker | undefined;
  #requestTimeout: number;
  #queueWhileReconnecting: boolean;
  #messageBuffer: number;

  #link: Link | undefined;
  #requests = new RequestTable();
  #heartbeat: Heartbeat;
  #router: FrameRouter;
  #watch = new WatchState();
  #life: Reconnector<Link, "open">;
  #stats: ClientStats = _emptyStats();

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
    this.url = _clientUrl(url, Boolean(options.link));
    this.#open = _opener(this.url, options);
    this.#authBody = _authBody(options);
    const report = (error: Error) => this.#life.report(error);
    const recover = options.recover !== false;
    this.#streams = recover ? new StreamTracker(options.positions, report) : undefined;
    const heartbeat = _positive("Heartbeat interval", options.heartbeat, 30_000);
    const policy = options.reconnect === false ? false : reconnectPolicy(options.reconnect);
    this.#requestTimeout = _positive("Request timeout", options.requestTimeout, 10_000);
    const connectTimeout = _positive("Connect timeout", options.connectTimeout, 10_000);
    this.#queueWhileReconnecting = options.queueWhileReconnecting ?? false;
    this.#messageBuffer = options.messageBuffer ?? 1024;
    if (!(Number.isSafeInteger(this.#messageBuffer) && this.#messageBuffer > 0)) {
      throw new RangeError(`Message buffer must be a positive integer: ${this.#messageBuffer}`);
    }
    this.#heartbeat = new Heartbeat(heartbeat, () => void this.#stats.missedHeartbeats++);
    this.#router = new FrameRouter(report, () => void this.#stats.dropped++);
    this.#life = new Reconnector<Link, "open">({
      upState: "open",
      policy,
      connectTimeout,
      ...(options.signal && { signal: options.signal }),
      connect: (signal) => this.#connect(signal),
      attach: (link) => this.#ready(link),
      onUp: (_link, reconnected) => {
        if (reconnected) this.#stats.reconnects++;
      },
      teardown: (reason, stopped) => this.#teardown(reason, stopped),
      final: (error) => error instanceof AuthError,
      timedOut: (ms) => _connectTimedOut(this.url, ms),
      gaveUp: _gaveUp,
      aborted: _aborted,
    });
    this.opened = this.#life.ready;
    this.#life.start();
  }

  /** The client's state now; see {@linkcode ClientState}. */
  get state(): ClientState {
    return this.#life.state;
  }

  /** Members online in the client's room, from the last heartbeat reply; 0 before one. */
  get online(): number {
    return this.#heartbeat.online;
  }

  /** Requests waiting for their reply (or, when queued, for the client to open). */
  get pending(): number {
    return this.#requests.size;
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
   * The positions held in the room, user and broadcast streams (a copy, to
   * save and pass back as the `positions` option); empty with `recover: false`.
   */
  get positions(): StreamPositions {
    return this.#streams?.positions ?? {};
  }

  /**
   * Calls `handler` with every frame of operation `op` the server sends:
   * pushes (the inner frames of op-9 batches included) and replies alike.
   * Pushes to the client's streams (op 18 on the wire) come by their
   * business op, with `stream` set; see {@linkcode ClientFrame}.
   * A handler that throws is reported to {@linkcode Client.onError}.
   *
   * @returns A function that removes the handler.
   */
  on(op: number, handler: FrameHandler): () => void {
    return this.#router.on(op, handler);
  }

  /**
   * Like {@linkcode Client.on}, with the body parsed as JSON (for the common
   * `{ act, data }` shape). A body that is not JSON is reported to
   * {@linkcode Client.onError} and skipped.
   *
   * @returns A function that removes the handler.
   */
  onJson<T = unknown>(op: number, handler: (value: T, frame: ClientFrame) => void): () => void {
    if (typeof handler !== "function") throw new TypeError("Handler must be a function");
    return this.on(op, (frame) => {
      const value = this.#router.parseJson<T>(frame);
      if (value !== NOT_JSON) handler(value as T, frame);
    });
  }

  /** Calls `listener` on every state change. Returns a function that removes it. */
  onState(listener: (change: StateChange) => void): () => void {
    return this.#life.onState(listener);
  }

  /**
   * Calls `listener` when pushes of a stream were missed for good (a
   * reconnect could not recover them, or a live push skipped offsets or
   * epochs); see {@linkcode StreamLost}. The first connection's come before
   * {@linkcode Client.opened} resolves. Returns a function that removes it.
   */
  onStreamLost(listener: (lost: StreamLost) => void): () => void {
    return this.#streams?.onLost(listener) ?? (() => {});
  }

  /**
   * Calls `listener` with problems that have no caller to reject: failed
   * reconnection attempts, throwing handlers, pushes that are not JSON,
   * malformed frames. Without listeners they are dropped.
   *
   * @returns A function that removes the listener.
   */
  onError(listener: (error: Error) => void): () => void {
    return this.#life.onError(listener);
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
  messages(options: MessagesOptions = {}): MessageStream<ClientFrame> {
    return this.#router.messages(options.buffer ?? this.#messageBuffer, this.#life.closing);
  }

  /**
   * {@linkcode Client.messages} with each body parsed as JSON. A body that is
   * not JSON is reported to {@linkcode Client.onError} and skipped.
   */
  async *jsonMessages<T = unknown>(
    options: MessagesOptions = {},
  ): AsyncGenerator<JsonMessage<T>, void, undefined> {
    yield* this.#router.json<T>(this.messages(options));
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
    if (this.#life.state !== "open" || link === undefined) throw this.#notOpen();
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
    return _parseReply<T>(await this.request(_json(value), options));
  }

  /**
   * Starts watching business ops `ops` (op 14); resolves on the server's
   * reply. They are watched again after every reconnect.
   */
  async sub(ops: readonly number[], options: RequestOptions = {}): Promise<void> {
    await this.#request(Op.Sub, _opList(ops), options);
    this.#watch.subscribed(ops);
  }

  /**
   * Stops watching business ops `ops` (op 16), including ones from
   * `accepts`; resolves on the server's reply. Stays so after reconnects.
   */
  async unsub(ops: readonly number[], options: RequestOptions = {}): Promise<void> {
    await this.#request(Op.Unsub, _opList(ops), options);
    this.#watch.unsubscribed(ops);
  }

  /**
   * Moves the connection to `room` (op 12), e.g. `live://1000`; empty leaves
   * the room. Resolves on the server's reply. The room is joined again after
   * every reconnect.
   */
  async changeRoom(room: string, options: RequestOptions = {}): Promise<void> {
    if (typeof room !== "string") throw new TypeError(`Room must be a string: ${typeof room}`);
    await this.#request(Op.ChangeRoom, room, options);
    this.#watch.moved(room);
  }

  /**
   * Closes the client for good: stops heartbeats and reconnection, fails
   * requests still pending with {@linkcode ConnectionClosedError}, closes
   * the connection, ends message streams and settles in state `closed`.
   * Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    return this.#life.close(new ConnectionClosedError("Client closed"));
  }

  /** Same as {@linkcode Client.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** One attempt: opens a link, authenticates, restores subscriptions and room. */
  async #connect(signal: AbortSignal): Promise<Link> {
    let link: Link | undefined;
    try {
      // Frames count only while this attempt's link is the client's link.
      const mine: { link?: Link } = {};
      const onFrame = (frame: Frame) => {
        if (mine.link !== undefined && mine.link === this.#link) this.#onFrame(mine.link, frame);
      };
      link = await this.#open(onFrame, signal);
      signal.throwIfAborted();
      this.#link = mine.link = link;
      const opened = link;
      link.closed.then((reason) => this.#lost(opened, reason));
      // The attempt's own deadline bounds these, so they get no timeout of their own.
      const streams = this.#streams;
      streams?.connecting();
      const auth = this.#authBody(streams?.positions ?? {}, this.#watch.room);
      await this.#requests.call(link, Op.Auth, auth, Infinity, signal);
      await Promise.all(
        this.#watch.restores(streams?.roomId).map(([op, body]) =>
          this.#requests.call(opened, op, body, Infinity, signal)
        ),
      );
      signal.throwIfAborted();
      return link;
    } catch (err) {
      if (link !== undefined) {
        link.close(_asError(err));
        await link.closed;
      }
      throw err;
    }
  }

  /** The link is authenticated and restored: start heartbeats and send queued requests. */
  #ready(link: Link): void {
    this.#stats.opens++;
    // Lost on its way here: the Reconnector sees it closed next.
    if (this.#link !== link) return;
    this.#heartbeat.start(link);
    this.#requests.flush(link);
  }

  /** A link ended: everything sent on it that still waits for a reply fails now. */
  #lost(link: Link, reason: Error): void {
    if (this.#link !== link) return;
    this.#link = undefined;
    this.#heartbeat.stop();
    // Say so at once: calls made from here on fail (or queue) as "reconnecting".
    this.#life.down(reason);
    this.#requests.lost(link, reason);
  }

  async #teardown(reason: Error, stopped: Promise<void>): Promise<void> {
    this.#heartbeat.stop();
    const error = reason instanceof ConnectionClosedError
      ? reason
      : new ConnectionClosedError(`Client closed: ${reason.message}`, { cause: reason });
    this.#requests.failAll(error);
    const link = this.#link;
    link?.close(error);
    await stopped;
    if (link !== undefined) await link.closed;
    this.#router.end();
  }

  #notOpen(): ConnectionClosedError {
    // Closing is set from close() on, before the state says "closed".
    if (this.#life.closing) return new ConnectionClosedError("Client is closed");
    const state = this.#life.state;
    if (state === "open") return new ConnectionClosedError("Connection is not open: it was lost");
    return new ConnectionClosedError(`Connection is not open: the client is ${state}`);
  }

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
        this.#heartbeat.replied(body);
        break;
      case Op.StreamPush: {
        if (this.#streams === undefined) break;
        const push = this.#streams.push(frame);
        if (push !== undefined) this.#router.deliver(push);
        return;
      }
      case Op.AuthReply:
      case Op.SendMsgReply:
      case Op.ChangeRoomReply:
      case Op.SubReply:
      case Op.UnsubReply:
        // Op 13 with seq 0 is the server moving the client itself: no request of ours.
        if (!this.#requests.reply(link, op, seq, body) && seq !== 0) this.#stats.lateReplies++;
        // Read now, before the frames after it: op 8's replay and op 13's room pushes.
        if (op === Op.AuthReply) this.#streams?.authorized(body);
        else if (op === Op.ChangeRoomReply) {
          const room = this.#streams?.roomChanged(body);
          // Unasked: the server moved the client, so a reconnect rejoins that room (8.5).
          if (seq === 0 && room !== undefined) this.#watch.moved(room);
        }
        break;
      case Op.DisconnectReply: {
        const error = this.#requests.disconnected(_decoder.decode(body));
        // The server closes next; closing first keeps later frames from counting.
        this.#router.deliver(frame);
        link.close(error);
        return;
      }
    }
    this.#router.deliver(frame);
  }

  /** A frame from inside an op-9 batch; batches only come from the current link. */
  #onInner = (frame: Frame): void => {
    const link = this.#link;
    if (link !== undefined) this.#onFrame(link, frame);
  };

  #request(op: number, body: Uint8Array | string, options: RequestOptions): Promise<Uint8Array> {
    let bytes: Uint8Array;
    let timeout: number;
    try {
      bytes = _bytes(body);
      timeout = _positive("Request timeout", options.timeout, this.#requestTimeout);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#life.closing) return Promise.reject(this.#notOpen());
    const link = this.#link;
    if (this.#life.state === "open" && link !== undefined) {
      return this.#requests.call(link, op, bytes, timeout, options.signal);
    }
    if (this.#queueWhileReconnecting) {
      return this.#requests.call(undefined, op, bytes, timeout, options.signal);
    }
    return Promise.reject(this.#notOpen());
  }
}
