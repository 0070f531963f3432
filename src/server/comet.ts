import { type Logger, silentLogger } from "../log.ts";
import { positive, positiveInt, sleep } from "./_util.ts";
import { Backlog } from "./backlog.ts";
// deno-lint-ignore no-unused-vars
import type { BacklogFullError } from "./backlog_full_error.ts";
import type { Bucket } from "./bucket.ts";
import type { CometObserver } from "./comet_observer.ts";
import type { Connection } from "./connection.ts";
import {
  DEFAULT_BUCKETS,
  DEFAULT_CLOSE_GRACE,
  DEFAULT_HANDSHAKE_TIMEOUT,
  DEFAULT_HEARTBEAT_TIMEOUT,
  DEFAULT_MAX_BODY,
  DEFAULT_QUEUE_SIZE,
  DEFAULT_SHUTDOWN_TIMEOUT,
  DEFAULT_WRITE_BURST,
  DEFAULT_WRITE_CONCURRENCY,
  DEFAULT_WRITE_TIMEOUT,
} from "./defaults.ts";
import { Deadlines } from "./deadlines.ts";
import { FanOut } from "./fan_out.ts";
import { HubEvents } from "./hub_events.ts";
import { type CometStats, newStats } from "./hub_stats.ts";
import { Limits } from "./limits.ts";
import type { TrustedProxies } from "./trusted_proxies.ts";
import { DefaultOperator, type Operator } from "./operator.ts";
import type { OnlineTotal, Push, PushTarget, RoomCount } from "./push.ts";
import type { BacklogFigures, CometOptions, PushAllOptions } from "./hub_options.ts";
import { type ConnectionFigures, Registry } from "./registry.ts";
import { Sessions } from "./sessions.ts";
import type { StreamHistory } from "./streams.ts";
import type { Wire } from "./wire.ts";
import { WriteScheduler } from "./write_scheduler.ts";

export { type CometLimits, DEFAULT_LIMITS, type LimitHits } from "./limits.ts";
export type { CometStats } from "./hub_stats.ts";
export type { OnlineTotal, Push, PushTarget, RoomCount } from "./push.ts";
export type { ConnectionFigures } from "./registry.ts";
export type { BacklogFigures, CometOptions, PushAllOptions } from "./hub_options.ts";

/**
 * The comet hub: runs each connection's protocol session, and fans pushes
 * out to keys, users, rooms or everyone. Transports hand it a
 * {@linkcode Wire} per connection; pushes reach it through
 * {@linkcode Comet.deliver} or the push methods.
 *
 * A facade over its parts: `sessions.ts` (accept, auth, cleanup) and
 * `client_ops.ts` (heartbeat, room change, watch, upstream via
 * `upstream.ts`) on the way in; `fan_out.ts`, then `room.ts` or
 * `channel.ts`, then `write_scheduler.ts` on the way out; `registry.ts`
 * (keys, users, rooms, online figures), `limits.ts`, `deadlines.ts` and
 * `hub_events.ts` beside them.
 *
 * @example
 * ```ts
 * import { Comet } from "./comet.ts";
 *
 * await using comet = new Comet({ heartbeatTimeout: 60_000 });
 * const body = new TextEncoder().encode("hello");
 * comet.pushRoom("live://1000", 1000, body); // 0: nobody is connected yet
 * ```
 */
export class Comet implements PushTarget, AsyncDisposable {
  /** Largest inbound body, for transports' decoders. */
  readonly maxBody: number;
  /** Where the hub logs. */
  readonly logger: Logger;

  #heartbeatTimeout: number;
  #stats: CometStats = newStats();
  #events: HubEvents;
  #backlog: Backlog;
  #writes: WriteScheduler;
  #deadlines: Deadlines;
  #registry: Registry;
  #fanOut: FanOut;
  #sessions: Sessions;
  #history: StreamHistory | undefined;
  #proxies: TrustedProxies;
  #closed: Promise<void> | undefined;

  /**
   * Creates a hub with no connections.
   *
   * @throws {RangeError} When a numeric option is out of range.
   * @throws {TypeError} When `slow` is not a known policy.
   */
  constructor(options: CometOptions = {}) {
    const operator: Operator = options.operator ?? new DefaultOperator();
    const buckets = positiveInt("Bucket count", options.buckets, DEFAULT_BUCKETS);
    const backlog = this.#backlog = new Backlog(options.backlog);
    const handshakeTimeout = positive(
      "Handshake timeout",
      options.handshakeTimeout,
      DEFAULT_HANDSHAKE_TIMEOUT,
    );
    this.#heartbeatTimeout = positive(
      "Heartbeat timeout",
      options.heartbeatTimeout,
      DEFAULT_HEARTBEAT_TIMEOUT,
    );
    const queueSize = positiveInt("Queue size", options.queueSize, DEFAULT_QUEUE_SIZE);
    const closeGrace = positive("Close grace", options.closeGrace, DEFAULT_CLOSE_GRACE);
    const stats = this.#stats;
    this.#writes = new WriteScheduler({
      concurrency: options.writeConcurrency ?? DEFAULT_WRITE_CONCURRENCY,
      burst: options.writeBurst ?? DEFAULT_WRITE_BURST,
      onStall: () => void stats.stalledWrites++,
    });
    this.maxBody = options.maxBody ?? DEFAULT_MAX_BODY;
    if (!Number.isSafeInteger(this.maxBody) || this.maxBody < 0) {
      throw new RangeError(`Max body must be a non-negative integer: ${this.maxBody}`);
    }
    const slow = options.slow ?? "close";
    if (slow !== "close" && slow !== "drop") {
      throw new TypeError(`Slow policy must be "close" or "drop": ${slow}`);
    }
    const writeTimeout = positive("Write timeout", options.writeTimeout, DEFAULT_WRITE_TIMEOUT);
    const logger = this.logger = options.logger ?? silentLogger;
    const events = this.#events = new HubEvents(logger, options.observer);
    const deadlines = this.#deadlines = new Deadlines(stats, logger);
    const limits = new Limits(options.limits ?? {}, stats.limitHits, logger, deadlines);
    this.#proxies = limits.proxies;
    const traceMids = _traceMids(options.traceMids);
    const registry = this.#registry = new Registry(buckets, backlog, events);
    const history = this.#history = options.history;
    this.#fanOut = new FanOut(registry, backlog, stats, logger, history);
    this.#sessions = new Sessions({
      operator,
      registry,
      limits,
      deadlines,
      events,
      stats,
      channels: { queueSize, slow, closeGrace, writes: this.#writes, writeTimeout, backlog },
      handshakeTimeout,
      heartbeatTimeout: this.#heartbeatTimeout,
      traceMids,
      history,
    });
    options.signal?.addEventListener("abort", () => void this.close(), { once: true });
  }

  /**
   * Who hears of sessions opening, heartbeating and closing, and of rooms
   * gaining their first or losing their last member here; it may also supply
   * the online count of heartbeat replies. A cluster sets it when a server
   * joins it. One at a time: setting replaces the previous one.
   */
  get observer(): CometObserver | undefined {
    return this.#events.observer;
  }

  set observer(observer: CometObserver | undefined) {
    this.#events.observer = observer;
  }

  /**
   * The history that stamps pushes to streams and answers clients that
   * opted in (docs/protocol.md, section 8); undefined when streams are off.
   */
  get history(): StreamHistory | undefined {
    return this.#history;
  }

  /** Counters since start. The object is live; copy it to keep a snapshot. */
  get stats(): Readonly<CometStats> {
    return this.#stats;
  }

  /** Bytes waiting to be written to connections, and their caps. */
  get backlog(): BacklogFigures {
    const b = this.#backlog;
    return {
      queueBytes: b.queueBytes,
      roomBytes: b.roomBytes,
      maxBytes: b.maxBytes,
      maxRoomBytes: b.maxRoomBytes,
    };
  }

  /** Authenticated connections. */
  get connections(): number {
    return this.#registry.connections;
  }

  /** Connections still in their handshake. */
  get handshaking(): number {
    return this.#sessions.handshaking;
  }

  /** Scheduled deadlines (one per live connection). */
  get timers(): number {
    return this.#deadlines.size;
  }

  /** Connections waiting in the write line, and writes in flight holding a place in it. */
  get writeLine(): { waiting: number; inFlight: number } {
    return { waiting: this.#writes.waiting, inFlight: this.#writes.inFlight };
  }

  /** The configured heartbeat deadline in milliseconds. */
  get heartbeatTimeout(): number {
    return this.#heartbeatTimeout;
  }

  /**
   * The reverse proxies whose connections name their clients (the limits'
   * `trustProxy`): a transport that reads such a header asks here first.
   * For transports, not part of the public API.
   *
   * @ignore
   */
  get trustedProxies(): TrustedProxies {
    return this.#proxies;
  }

  /** True once {@linkcode Comet.close} began. */
  get closing(): boolean {
    return this.#sessions.closing;
  }

  /**
   * The bucket that holds `key`; for tests, not part of the public API.
   *
   * @ignore
   */
  bucket(key: string): Bucket {
    return this.#registry.bucket(key);
  }

  /**
   * Every bucket; for tests, not part of the public API. Others ask
   * {@linkcode Comet.openSessions} or the figures.
   *
   * @ignore
   */
  get buckets(): readonly Bucket[] {
    return this.#registry.buckets;
  }

  /** The authenticated connection with `key`, if any. */
  channel(key: string): Connection | undefined {
    return this.#registry.channel(key);
  }

  /** The authenticated connections that are open (not closing), e.g. to register them anew. */
  *openSessions(): Generator<Connection, void, undefined> {
    for (const ch of this.#registry.sessions()) if (ch.state === "open") yield ch;
  }

  /**
   * Authenticated connections by transport and the frames waiting in their
   * queues, counted by walking every connection once: the push path pays
   * nothing for them, and a call costs time in proportion to the connections.
   */
  connectionFigures(): ConnectionFigures {
    return this.#registry.figures();
  }

  /**
   * Runs one connection's protocol session to its end: handshake, auth, then
   * every client op, while its writer task drains its queue. A connection
   * that a connection limit refuses (see {@linkcode CometLimits}) is closed
   * at once, before any protocol.
   *
   * @returns A promise that settles when the connection is fully closed.
   */
  serve(wire: Wire): Promise<void> {
    return new Promise((resolve) => this._serve(wire, resolve));
  }

  /**
   * @internal Starts serving `wire` and returns at once; `onEnd` runs once
   * the connection is fully closed. Transports use this rather than
   * {@linkcode Comet.serve}: an idle connection then holds no promise of its
   * own waiting for its end.
   */
  _serve(wire: Wire, onEnd?: () => void): void {
    this.#sessions.serve(wire, onEnd);
  }

  /**
   * Delivers `push` to the connections it is for, as
   * {@linkcode Comet.pushKeys}, {@linkcode Comet.pushMids},
   * {@linkcode Comet.pushRoom} or {@linkcode Comet.pushAll} would.
   *
   * @returns How many connections it was queued to (so far, when paced).
   * @throws {RangeError} When the op is reserved (0 to 18) or `speed` negative.
   * @throws {BacklogFullError} When the bytes waiting to be written would pass a cap.
   */
  deliver(push: Push): number {
    const fanOut = this.#fanOut;
    switch (push.kind) {
      case "keys":
        return fanOut.keys(push.keys, push.op, push.body);
      case "mids":
        return fanOut.mids(push);
      case "room":
        return fanOut.room(push);
      case "all":
        return fanOut.all(push);
    }
  }

  /**
   * Pushes op `op` with `body` to the connections with these keys that watch `op`.
   *
   * @returns How many connections it was queued to.
   */
  pushKeys(keys: Iterable<string>, op: number, body: Uint8Array): number {
    return this.#fanOut.keys(keys, op, body);
  }

  /**
   * Pushes to every connection (device) of these users that watches `op`.
   *
   * @returns How many connections it was queued to.
   */
  pushMids(mids: Iterable<number>, op: number, body: Uint8Array): number {
    return this.#fanOut.mids({ kind: "mids", mids: Array.from(mids), op, body });
  }

  /**
   * Pushes to every member of room `room`, watched or not. The frame is
   * encoded once and its bytes shared by all members.
   *
   * @returns How many connections it was queued to.
   */
  pushRoom(room: string, op: number, body: Uint8Array): number {
    return this.#fanOut.room({ kind: "room", room, op, body });
  }

  /**
   * Pushes to every connection that watches `op`. With `speed`, the
   * broadcast is paced bucket by bucket at about that many connections per
   * second and runs in the background; the call returns at once.
   *
   * @returns How many connections it was queued to (so far, when paced).
   */
  pushAll(op: number, body: Uint8Array, options: PushAllOptions = {}): number {
    return this.#fanOut.all({ kind: "all", op, body, speed: options.speed ?? 0 });
  }

  /** Members of `room` online. */
  roomOnline(room: string): number {
    return this.#registry.roomOnline(room);
  }

  /** Every non-empty room with its member count. */
  get rooms(): ReadonlyMap<string, number> {
    return this.#registry.rooms;
  }

  /** The `limit` fullest rooms whose id starts with `prefix`, fullest first. */
  topRooms(prefix: string, limit: number): RoomCount[] {
    return this.#registry.topRooms(prefix, limit);
  }

  /** Authenticated connections and distinct client IPs. */
  onlineTotal(): OnlineTotal {
    return this.#registry.onlineTotal();
  }

  /**
   * Moves an authenticated connection of this hub to `room` (empty: leaves
   * its room). A connection that has ended since is left alone.
   *
   * @throws {RangeError} When the room id is longer than 256 characters.
   */
  changeRoom(connection: Connection, room: string): void {
    // The registry's own object, found by key: a Connection from elsewhere cannot reach in.
    const ch = this.#registry.channel(connection.key);
    if (ch !== connection) return;
    const from = ch._room;
    this.#registry.changeRoom(ch, room);
    if (ch._optedIn && from !== room) this.#sessions.moved(ch, room);
  }

  /**
   * Stops the hub: every connection gets op 6 (DisconnectReply), its queue is
   * flushed and it is closed. Resolves when all connections are gone, or after
   * `timeout` ms, when any left are cut off. Idempotent.
   */
  close(timeout: number = DEFAULT_SHUTDOWN_TIMEOUT): Promise<void> {
    return this.#closed ??= this.#shutdown(timeout);
  }

  /** Same as {@linkcode Comet.close} with its default timeout. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(timeout: number): Promise<void> {
    const sessions = this.#sessions;
    const registry = this.#registry;
    this.#fanOut.stop();
    const drained = sessions.closeAll("server shutting down", registry.sessions());
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeout);
    });
    const timedOut = await Promise.race([drained.then(() => false), late]);
    clearTimeout(timer);
    if (timedOut) {
      this.logger.warn("Shutdown timed out; cutting connections off", { live: sessions.live });
      sessions.abortAll(registry.sessions());
      // Aborted sessions end within a few turns; wait for their cleanup (rooms, counts,
      // operator.disconnect) so that close() resolves on an idle hub, but not forever:
      // an operator's disconnect may hang.
      const settle = new AbortController();
      await Promise.race([drained, sleep(timeout, settle.signal)]);
      settle.abort();
    }
    this.#deadlines.close();
    this.#writes.close();
  }
}

/** The traced mids, checked; undefined when none. */
function _traceMids(given: Iterable<number> | undefined): Set<number> | undefined {
  if (given === undefined) return undefined;
  const mids = new Set(given);
  for (const mid of mids) {
    if (!Number.isSafeInteger(mid) || mid <= 0) {
      throw new RangeError(`Traced mid must be a positive safe integer: ${mid}`);
    }
  }
  return mids.size > 0 ? mids : undefined;
}
