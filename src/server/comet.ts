import { _putInt32 } from "../protocol/_int.ts";
import { DEFAULT_MAX_BODY, encodeFrame, type Frame, frameOp } from "../protocol/frame.ts";
import { isReservedOp, Op, RESERVED_OPS } from "../protocol/op.ts";
import { ProtocolError } from "../protocol/protocol_error.ts";
import { WebhookError } from "../auth/webhook_operator.ts";
import { type LogFields, type Logger, silentLogger } from "../log.ts";
import { Backlog, type BacklogLimits } from "./backlog.ts";
import { BacklogFullError } from "./backlog_full_error.ts";
import { Bucket } from "./bucket.ts";
import {
  Channel,
  type ChannelHooks,
  type ChannelOptions,
  DEFAULT_WRITE_TIMEOUT,
  type SlowPolicy,
} from "./channel.ts";
import type { CometObserver } from "./comet_observer.ts";
import { DefaultOperator, type Operator, type ReplyBody, type Session } from "./operator.ts";
import { SharedFrame } from "./frame_queue.ts";
import { TimerHeap } from "./timer_heap.ts";
import { WriteScheduler } from "./write_scheduler.ts";
import type { ConnInfo, FrameReader, Wire } from "./wire.ts";

/** Options for {@linkcode Comet}. Durations are in milliseconds. */
export interface CometOptions {
  /** Application logic: auth, upstream messages. Defaults to {@linkcode DefaultOperator}. */
  operator?: Operator;
  /** Number of buckets the connections are sharded into. Default 32. */
  buckets?: number;
  /** A connection that has not authenticated by then is closed. Default 5 s. */
  handshakeTimeout?: number;
  /** A connection silent for this long after its last heartbeat is closed. Default 8 min. */
  heartbeatTimeout?: number;
  /**
   * Frames pushed to one connection alone (its key, its user) queued at most
   * before the slow policy applies; also what a slow connection keeps under
   * `drop`. Default 128.
   */
  queueSize?: number;
  /** What to do with a slow connection. Default `"close"`. */
  slow?: SlowPolicy;
  /**
   * A connection is slow when its socket refuses what is written to it
   * (a write pending, or consecutive writes the kernel took only part of)
   * for this long while a full queue's worth waits for it, or when frames
   * pushed to it alone pass `queueSize`. Frames waiting only for the
   * server's own turn never make it slow. Default 2 s.
   */
  writeTimeout?: number;
  /**
   * Caps in bytes on what waits to be written: past them a push is refused
   * whole with {@linkcode BacklogFullError} (the push API answers 429).
   * Default: 256 MiB for the hub, 32 MiB for a room's log in one bucket.
   */
  backlog?: BacklogLimits;
  /** Largest inbound frame body in bytes; transports enforce it. Default 4096. */
  maxBody?: number;
  /** How long a graceful close may spend flushing before the socket is cut. Default 1 s. */
  closeGrace?: number;
  /**
   * Socket writes in flight at most; connections with something to send wait
   * their turn in one line (see {@linkcode WriteScheduler}). Default 128.
   */
  writeConcurrency?: number;
  /**
   * Write turns started per visit of the event loop before it may poll for
   * I/O again (see {@linkcode WriteSchedulerOptions.burst}). Higher favours
   * big rooms (10,000 members: 32 gave 20% more deliveries/s and a third of
   * the p99 latency of 8) over the push API's responsiveness (1,000
   * members: 36% fewer pushes/s). Default 8.
   */
  writeBurst?: number;
  /** Where log lines go. Default: none. */
  logger?: Logger;
  /** Hears of sessions and rooms opening and closing; see {@linkcode Comet.observer}. */
  observer?: CometObserver;
  /**
   * Limits on connections and on what clients may do; each absent limit is
   * off. The `comet` command applies {@linkcode DEFAULT_LIMITS}. Default: none.
   */
  limits?: CometLimits;
  /**
   * User ids (mids) whose connections log every step at info level: auth,
   * room changes, watch changes, upstream messages, pushes queued to them,
   * heartbeats and the close with its reason. Other connections pay one set
   * lookup at auth. Default: none.
   */
  traceMids?: Iterable<number>;
  /** Aborting closes the hub as {@linkcode Comet.close} does. */
  signal?: AbortSignal;
}

/**
 * Limits a {@linkcode Comet} enforces. Connection limits refuse a new
 * connection at accept: its socket is closed before any protocol, and it
 * costs neither a channel nor a timer. The others close the connection with
 * op 6 and a reason. Every hit is counted in {@linkcode CometStats.limitHits}.
 * Absent or `Infinity`: no limit.
 *
 * @example
 * ```ts
 * import { Comet, DEFAULT_LIMITS } from "./comet.ts";
 *
 * await using comet = new Comet({ limits: { ...DEFAULT_LIMITS, maxConnectionsPerIp: 50 } });
 * ```
 */
export interface CometLimits {
  /** Connections at once, authenticated or not. */
  maxConnections?: number;
  /** Connections at once from one IP address, authenticated or not. */
  maxConnectionsPerIp?: number;
  /** New connections per second from one IP address; bursts of as many are let through. */
  connectRate?: number;
  /**
   * Refused authentications from one IP address within `authWindow`; the
   * one that reaches it bars the address: its new connections are refused
   * at accept for one `authWindow`. An auth service that fails (a
   * {@linkcode WebhookError} other than `refused`) does not count.
   */
  maxAuthAttempts?: number;
  /** The window of `maxAuthAttempts`, in milliseconds. Default 60 s. */
  authWindow?: number;
  /**
   * Upstream messages (op 4) per second per connection; bursts of as many
   * are let through. Exceeding it closes the connection with op 6
   * `rate limit: upstream messages`.
   */
  upstreamRate?: number;
  /**
   * Rooms with members on this node. A client joining a new room beyond it
   * (at auth or with op 12) is closed with op 6
   * `room limit: too many rooms on this node`. Rooms the server itself
   * assigns with {@linkcode Comet.changeRoom} are not limited.
   */
  maxRooms?: number;
}

/**
 * The limits the `comet` command applies unless told otherwise: generous for
 * well-behaved clients, including many behind one NAT address, and small
 * enough that one host cannot take a node down.
 *
 * @example
 * ```ts
 * import { DEFAULT_LIMITS } from "./comet.ts";
 * console.log(DEFAULT_LIMITS.upstreamRate); // 100
 * ```
 */
export const DEFAULT_LIMITS: Readonly<Required<CometLimits>> = Object.freeze({
  maxConnections: 100_000,
  maxConnectionsPerIp: 1_000,
  connectRate: 200,
  maxAuthAttempts: 20,
  authWindow: 60_000,
  upstreamRate: 100,
  maxRooms: 100_000,
});

/** How many times each limit of {@linkcode CometLimits} was hit. */
export interface LimitHits {
  /** Connections refused at accept: `maxConnections` reached. */
  connections: number;
  /** Connections refused at accept: `maxConnectionsPerIp` reached. */
  connectionsPerIp: number;
  /** Connections refused at accept: `connectRate` exceeded. */
  connectRate: number;
  /** Connections refused at accept: their address is barred after `maxAuthAttempts`. */
  authAttempts: number;
  /** Connections closed for sending upstream messages faster than `upstreamRate`. */
  upstreamRate: number;
  /** Connections closed for joining a room beyond `maxRooms`. */
  rooms: number;
}

/** Counters of what the hub has done since it started. */
export interface CometStats {
  /** Connections accepted, authenticated or not. */
  accepted: number;
  /** Successful authentications. */
  authOk: number;
  /** Refused authentications. */
  authFailed: number;
  /** Push requests by kind. */
  pushes: { keys: number; mids: number; room: number; all: number };
  /** Frames queued to connections by pushes. */
  deliveries: number;
  /** Messages dropped by the `drop` slow policy. */
  dropped: number;
  /** Pushes refused whole because a cap on queued bytes was reached, by cap. */
  pushesRefused: { room: number; server: number };
  /** Connections closed by the `close` slow policy. */
  slowClosed: number;
  /** Connections closed for not authenticating in time. */
  handshakeTimeouts: number;
  /** Connections closed for missing heartbeats. */
  heartbeatTimeouts: number;
  /** Connections closed because their credentials expired (session `expiresAt`). */
  tokenExpired: number;
  /** Connections closed for asking (op 12) for a room outside their session's `rooms`. */
  roomRefused: number;
  /** Connections closed for breaking the protocol. */
  protocolErrors: number;
  /**
   * Writes that were still in flight after 50 ms (a peer not reading) and
   * stopped holding one of the `writeConcurrency` places.
   */
  stalledWrites: number;
  /** Connections refused or closed by a limit, by limit. */
  limitHits: LimitHits;
}

/** Bytes waiting to be written to a hub's connections; see {@linkcode Comet.backlog}. */
export interface BacklogFigures {
  /** Frames in connections' own queues; a broadcast's frame once. */
  queueBytes: number;
  /** Frames in room logs, each once. */
  roomBytes: number;
  /** The cap on both together; a push past it is refused. */
  maxBytes: number;
  /** The cap on one room's log within one bucket. */
  maxRoomBytes: number;
}

/** Online figures as goim reports them. */
export interface OnlineTotal {
  /** Distinct client IP addresses among authenticated connections. */
  ipCount: number;
  /** Authenticated connections. */
  connCount: number;
}

/** A room and its member count. */
export interface RoomCount {
  /** Room id, e.g. `live://1000`. */
  room: string;
  /** Members online. */
  count: number;
}

/** Options of {@linkcode Comet.pushAll}. */
export interface PushAllOptions {
  /** Connections per second to pace the broadcast at (goim's `speed`); 0 = at once. */
  speed?: number;
}

/** The observer calls that tell of something that happened. */
type _Event = "opened" | "heartbeat" | "closed" | "roomOpened" | "roomClosed";

/** A session with every default filled in. */
type _Normalized = Required<Omit<Session, "heartbeat" | "expiresAt" | "rooms">> & {
  heartbeat: number;
  expiresAt: number;
  rooms: string[] | undefined;
};

const _MAX_ID_LENGTH = 256;
const _MAX_WATCH = 1024;
/** Upstream messages one connection may have with the operator at once. */
const _MAX_INFLIGHT = 32;
/** How often, at most, per-IP records of idle addresses are swept, in ms. */
const _SWEEP_INTERVAL = 10_000;
const _decoder = new TextDecoder();

/**
 * What the hub keeps per client IP address while some per-IP limit is on:
 * live connections, the connect-rate token bucket and the auth failure window.
 */
interface _Peer {
  live: number;
  tokens: number;
  at: number;
  failures: number;
  since: number;
  barredUntil: number;
}

/**
 * What a token bucket filling at `rate` per second (holding at most
 * `max(rate, 1)`) holds at `now`, if it held `tokens` at `at`. No timer: the
 * refill is worked out when the bucket is looked at.
 */
function _refill(tokens: number, at: number, now: number, rate: number): number {
  return Math.min(Math.max(rate, 1), tokens + ((now - at) * rate) / 1000);
}

/** A limit: absent or Infinity for none, else a positive number (an integer for counts). */
function _limit(name: string, value: number | undefined, integer: boolean): number {
  if (value === undefined || value === Infinity) return Infinity;
  if (typeof value !== "number" || !(value > 0) || (integer && !Number.isSafeInteger(value))) {
    throw new RangeError(
      `${name} must be a positive ${integer ? "integer" : "number"} or Infinity: ${value}`,
    );
  }
  return value;
}

function _positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number: ${value}`);
  }
  return value;
}

function _positiveInt(name: string, value: number | undefined, fallback: number): number {
  const n = _positive(name, value, fallback);
  if (!Number.isSafeInteger(n)) throw new RangeError(`${name} must be an integer: ${n}`);
  return n;
}

/** FNV-1a over the key's UTF-16 code units: cheap, and spreads UUIDs evenly. */
function _hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Hands the wire's next frame to `onFrame`; a read that throws or rejects goes to `failed`. */
function _read(
  wire: Wire,
  onFrame: (frame: Frame | null) => void,
  failed: (err: unknown) => void,
): void {
  let read: Promise<Frame | null>;
  try {
    read = wire.read();
  } catch (err) {
    return failed(err);
  }
  read.then(onFrame, failed);
}

/**
 * Reads a wire that does not deliver its own frames (no `_listen`) and hands
 * each frame to `reader`, as a listening wire would: two closures per
 * connection instead of none.
 */
function _pull(wire: Wire, reader: FrameReader): void {
  const ended = (err?: unknown): void => reader._ended(err);
  const onFrame = (frame: Frame | null): void => {
    if (frame === null) return reader._ended();
    const go = reader._frame(frame);
    if (go === true) _read(wire, onFrame, ended);
    else if (go !== false) go.then((more) => more && _read(wire, onFrame, ended), ended);
  };
  _read(wire, onFrame, ended);
}

/** Whether an operator's result is to be awaited: a promise or another thenable. */
function _isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

function _isInt32(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= -0x80000000 && n <= 0x7fffffff;
}

/**
 * Parses goim's comma-separated op list (`"1000,1001"`).
 *
 * @throws {ProtocolError} When an entry is not a 32-bit integer.
 */
function _parseOps(body: Uint8Array): number[] {
  const text = _decoder.decode(body).trim();
  if (text === "") return [];
  const parts = text.split(",").map((s) => s.trim());
  // Decimal integers only, as goim's strconv.ParseInt(s, 10, 32): Number() alone
  // would take "" and " " as 0 and accept "0x10" or "1e3".
  const ops = parts.map((s) => (/^[+-]?\d{1,10}$/.test(s) ? Number(s) : NaN));
  if (ops.length > _MAX_WATCH || !ops.every(_isInt32)) {
    throw new ProtocolError(`Op list is not comma-separated 32-bit integers: ${text.slice(0, 64)}`);
  }
  return ops;
}

/**
 * The frame of a push of `op`. The protocol's own operations are refused: op 6
 * would close a client's session while the hub still counts it, op 9 with a
 * body that is not frames would break its reader.
 */
function _pushFrame(op: number, body: Uint8Array): Uint8Array {
  if (isReservedOp(op)) {
    throw new RangeError(
      `Operation is reserved by the protocol (${RESERVED_OPS.min} to ${RESERVED_OPS.max}): ${op}`,
    );
  }
  return encodeFrame(op, 0, body);
}

/**
 * The comet hub: owns the buckets, rooms and the one timer heap, runs each
 * connection's protocol session, and fans pushes out to keys, users, rooms
 * or everyone. Transports hand it a {@linkcode Wire} per connection.
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
export class Comet implements AsyncDisposable {
  /** Largest inbound body, for transports' decoders. */
  readonly maxBody: number;
  /** Where the hub logs. */
  readonly logger: Logger;

  #operator: Operator;
  #observer: CometObserver | undefined;
  #buckets: Bucket[];
  #handshakeTimeout: number;
  #heartbeatTimeout: number;
  #writes: WriteScheduler;
  /** Bytes waiting to be written, and their caps. */
  #backlog: Backlog;
  /** Shared by every channel of this hub. */
  #channels: ChannelOptions;
  #timers: TimerHeap<Channel>;
  #handshaking = new Set<Channel>();
  /** What `serve` waits on, for the sessions it started; transports pass none. */
  #onEnds = new Map<Channel, () => void>();
  #mids = new Map<number, Channel | Set<Channel>>();
  #roomCounts = new Map<string, number>();
  #ipCounts = new Map<string, number>();
  #connections = 0;
  #live = 0;
  #closing = false;
  #closed: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  #pacing = new AbortController();
  #maxConnections: number;
  #maxPerIp: number;
  #connectRate: number;
  #maxAuthAttempts: number;
  #authWindow: number;
  #upstreamRate: number;
  #maxRooms: number;
  /** Whether any per-IP limit is on, and so #peers is kept. */
  #perIp: boolean;
  #peers = new Map<string, _Peer>();
  #sweptAt = -Infinity;
  #traceMids: Set<number> | undefined;
  #stats: CometStats = {
    accepted: 0,
    authOk: 0,
    authFailed: 0,
    pushes: { keys: 0, mids: 0, room: 0, all: 0 },
    deliveries: 0,
    dropped: 0,
    pushesRefused: { room: 0, server: 0 },
    slowClosed: 0,
    handshakeTimeouts: 0,
    heartbeatTimeouts: 0,
    tokenExpired: 0,
    roomRefused: 0,
    protocolErrors: 0,
    stalledWrites: 0,
    limitHits: {
      connections: 0,
      connectionsPerIp: 0,
      connectRate: 0,
      authAttempts: 0,
      upstreamRate: 0,
      rooms: 0,
    },
  };
  #hooks: ChannelHooks = {
    dropped: (ch, count) => {
      this.#stats.dropped += count;
      if (ch._traced) this.#trace(ch, "push dropped, slow consumer", { count });
    },
    slow: () => void this.#stats.slowClosed++,
    closing: (ch, grace) => {
      if (ch._timer) this.#timers.reset(ch._timer, grace);
    },
    pushed: (ch, frame) =>
      this.#trace(ch, "push queued", { op: frameOp(frame), bytes: frame.length }),
    frame: (ch, frame) => this.#clientFrame(ch, frame),
    ended: (ch, err) => this.#end(ch, true, err),
  };

  /**
   * Creates a hub with no connections.
   *
   * @throws {RangeError} When a numeric option is out of range.
   * @throws {TypeError} When `slow` is not a known policy.
   */
  constructor(options: CometOptions = {}) {
    this.#operator = options.operator ?? new DefaultOperator();
    const buckets = _positiveInt("Bucket count", options.buckets, 32);
    this.#backlog = new Backlog(options.backlog);
    const backlog = this.#backlog;
    this.#buckets = Array.from({ length: buckets }, () => new Bucket(backlog));
    this.#handshakeTimeout = _positive("Handshake timeout", options.handshakeTimeout, 5_000);
    this.#heartbeatTimeout = _positive("Heartbeat timeout", options.heartbeatTimeout, 480_000);
    const queueSize = _positiveInt("Queue size", options.queueSize, 128);
    const closeGrace = _positive("Close grace", options.closeGrace, 1_000);
    this.#writes = new WriteScheduler({
      concurrency: options.writeConcurrency ?? 128,
      burst: options.writeBurst ?? 8,
      onStall: () => void this.#stats.stalledWrites++,
    });
    this.maxBody = options.maxBody ?? DEFAULT_MAX_BODY;
    if (!Number.isSafeInteger(this.maxBody) || this.maxBody < 0) {
      throw new RangeError(`Max body must be a non-negative integer: ${this.maxBody}`);
    }
    const slow = options.slow ?? "close";
    if (slow !== "close" && slow !== "drop") {
      throw new TypeError(`Slow policy must be "close" or "drop": ${slow}`);
    }
    this.#channels = {
      queueSize,
      slow,
      hooks: this.#hooks,
      closeGrace,
      writes: this.#writes,
      writeTimeout: _positive("Write timeout", options.writeTimeout, DEFAULT_WRITE_TIMEOUT),
      backlog,
    };
    this.logger = options.logger ?? silentLogger;
    this.#observer = options.observer;
    const limits = options.limits ?? {};
    this.#maxConnections = _limit("Max connections", limits.maxConnections, true);
    this.#maxPerIp = _limit("Max connections per IP", limits.maxConnectionsPerIp, true);
    this.#connectRate = _limit("Connect rate", limits.connectRate, false);
    this.#maxAuthAttempts = _limit("Max auth attempts", limits.maxAuthAttempts, true);
    this.#authWindow = _positive("Auth window", limits.authWindow, DEFAULT_LIMITS.authWindow);
    this.#upstreamRate = _limit("Upstream rate", limits.upstreamRate, false);
    this.#maxRooms = _limit("Max rooms", limits.maxRooms, true);
    this.#perIp = this.#maxPerIp !== Infinity || this.#connectRate !== Infinity ||
      this.#maxAuthAttempts !== Infinity;
    if (options.traceMids !== undefined) {
      const mids = new Set(options.traceMids);
      for (const mid of mids) {
        if (!Number.isSafeInteger(mid) || mid <= 0) {
          throw new RangeError(`Traced mid must be a positive safe integer: ${mid}`);
        }
      }
      if (mids.size > 0) this.#traceMids = mids;
    }
    this.#timers = new TimerHeap({
      onExpire: (ch) => this.#expire(ch),
      onError: (error, ch) => this.logger.error("Deadline handler failed", { key: ch.key, error }),
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
    return this.#observer;
  }

  set observer(observer: CometObserver | undefined) {
    this.#observer = observer;
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
    return this.#connections;
  }

  /** Connections still in their handshake. */
  get handshaking(): number {
    return this.#handshaking.size;
  }

  /** Scheduled deadlines (one per live connection). */
  get timers(): number {
    return this.#timers.size;
  }

  /** Connections waiting in the write line, and writes in flight holding a place in it. */
  get writeLine(): { waiting: number; inFlight: number } {
    return { waiting: this.#writes.waiting, inFlight: this.#writes.inFlight };
  }

  /** The configured heartbeat deadline in milliseconds. */
  get heartbeatTimeout(): number {
    return this.#heartbeatTimeout;
  }

  /** True once {@linkcode Comet.close} began. */
  get closing(): boolean {
    return this.#closing;
  }

  /** The bucket that holds `key`. */
  bucket(key: string): Bucket {
    return this.#buckets[_hash(key) % this.#buckets.length]!;
  }

  /** Every bucket, for iteration. */
  get buckets(): readonly Bucket[] {
    return this.#buckets;
  }

  /** The authenticated connection with `key`, if any. */
  channel(key: string): Channel | undefined {
    return this.bucket(key).channel(key);
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
    if (this.#closing || !this.#admit(wire.info.remoteAddr.hostname)) {
      wire.close();
      onEnd?.();
      return;
    }
    const ch = new Channel(wire, this.#channels);
    this.#live++;
    this.#stats.accepted++;
    this.#handshaking.add(ch);
    ch._timer = this.#timers.add(ch, this.#handshakeTimeout);
    if (onEnd !== undefined) this.#onEnds.set(ch, onEnd);
    this.#awaitAuth(ch);
  }

  /**
   * Reads up to the auth frame (goim skips whatever a client sends before
   * it), then authenticates. Callbacks rather than an async function: with a
   * synchronous operator, the handshake then makes no promise of its own.
   */
  #awaitAuth(ch: Channel): void {
    const failed = (err: unknown): void => this.#end(ch, false, err);
    const onFrame = (frame: Frame | null): void => {
      if (frame === null) return this.#end(ch, false);
      if (frame.op !== Op.Auth) return this.#awaitAuth(ch);
      let registered: boolean | Promise<boolean>;
      try {
        registered = this.#authenticate(ch, frame);
      } catch (err) {
        return failed(err);
      }
      if (registered === true) this.#clientOps(ch);
      else if (registered === false) this.#end(ch, false);
      else registered.then((ok) => ok ? this.#clientOps(ch) : this.#end(ch, false), failed);
    };
    _read(ch.wire, onFrame, failed);
  }

  /**
   * Pushes op `op` with `body` to the connections with these keys that watch `op`.
   *
   * @returns How many connections it was queued to.
   */
  pushKeys(keys: Iterable<string>, op: number, body: Uint8Array): number {
    const frame = _pushFrame(op, body);
    const targets: Channel[] = [];
    for (const key of keys) {
      const ch = this.bucket(key).channel(key);
      if (ch !== undefined && ch.watches(op)) targets.push(ch);
    }
    this.#fits(frame, targets.length);
    let n = 0;
    for (const ch of targets) if (ch.push(frame)) n++;
    this.#stats.pushes.keys++;
    this.#stats.deliveries += n;
    return n;
  }

  /**
   * Pushes to every connection (device) of these users that watches `op`.
   *
   * @returns How many connections it was queued to.
   */
  pushMids(mids: Iterable<number>, op: number, body: Uint8Array): number {
    const frame = _pushFrame(op, body);
    const targets: Channel[] = [];
    for (const mid of mids) {
      const entry = this.#mids.get(mid);
      if (entry === undefined) continue;
      if (entry instanceof Channel) {
        if (entry.watches(op)) targets.push(entry);
      } else {
        for (const ch of entry) if (ch.watches(op)) targets.push(ch);
      }
    }
    this.#fits(frame, targets.length);
    let n = 0;
    for (const ch of targets) if (ch.push(frame)) n++;
    this.#stats.pushes.mids++;
    this.#stats.deliveries += n;
    return n;
  }

  /**
   * Pushes to every member of room `room`, watched or not. The frame is
   * encoded once and its bytes shared by all members.
   *
   * @returns How many connections it was queued to.
   */
  pushRoom(room: string, op: number, body: Uint8Array): number {
    const frame = _pushFrame(op, body);
    let n = 0;
    if (this.#roomCounts.has(room)) {
      // Checked whole before any part queues it: a push is refused whole or reaches every member.
      let parts = 0;
      for (const bucket of this.#buckets) {
        const part = bucket.rooms.get(room);
        if (part === undefined) continue;
        parts++;
        if (!part.admits(frame.length)) {
          this.#full(
            "room",
            `Room backlog is full: ${room} holds ${part.bytes} bytes in one bucket, the cap is ${this.#backlog.maxRoomBytes}`,
          );
        }
      }
      this.#fits(frame, parts);
      for (const bucket of this.#buckets) n += bucket.rooms.get(room)?.push(frame) ?? 0;
    }
    this.#stats.pushes.room++;
    this.#stats.deliveries += n;
    return n;
  }

  /**
   * Pushes to every connection that watches `op`. With `speed`, the
   * broadcast is paced bucket by bucket at about that many connections per
   * second and runs in the background; the call returns at once.
   *
   * @returns How many connections it was queued to (so far, when paced).
   */
  pushAll(op: number, body: Uint8Array, options: PushAllOptions = {}): number {
    const frame = _pushFrame(op, body);
    const speed = options.speed ?? 0;
    if (!(speed >= 0)) throw new RangeError(`Speed must be a non-negative number: ${speed}`);
    // One allocation shared by every queue: its bytes count once.
    this.#fits(frame, 1);
    const shared = new SharedFrame(frame.length);
    this.#stats.pushes.all++;
    if (speed > 0) {
      this.#pushAllPaced(frame, shared, op, speed).catch((err) => {
        this.logger.warn("Paced broadcast failed", { error: err });
      });
      return 0;
    }
    let n = 0;
    for (const bucket of this.#buckets) n += this.#pushBucket(bucket, frame, shared, op);
    return n;
  }

  /** Members of `room` online. */
  roomOnline(room: string): number {
    return this.#roomCounts.get(room) ?? 0;
  }

  /** Every non-empty room with its member count. */
  get rooms(): ReadonlyMap<string, number> {
    return this.#roomCounts;
  }

  /** The `limit` fullest rooms whose id starts with `prefix`, fullest first. */
  topRooms(prefix: string, limit: number): RoomCount[] {
    const out: RoomCount[] = [];
    for (const [room, count] of this.#roomCounts) {
      if (room.startsWith(prefix)) out.push({ room, count });
    }
    out.sort((a, b) => b.count - a.count || (a.room < b.room ? -1 : 1));
    return out.slice(0, Math.max(0, limit));
  }

  /** Authenticated connections and distinct client IPs. */
  onlineTotal(): OnlineTotal {
    return { ipCount: this.#ipCounts.size, connCount: this.#connections };
  }

  /**
   * Moves an authenticated connection to `room` (empty: leaves its room).
   *
   * @throws {RangeError} When the room id is longer than 256 characters.
   */
  changeRoom(channel: Channel, room: string): void {
    if (room.length > _MAX_ID_LENGTH) {
      throw new RangeError(`Room id is longer than ${_MAX_ID_LENGTH} characters: ${room.length}`);
    }
    if (room === channel._room) return;
    this.#leave(channel);
    if (room !== "") this.#join(channel, room);
  }

  /**
   * Stops the hub: every connection gets op 6 (DisconnectReply), its queue is
   * flushed and it is closed. Resolves when all connections are gone, or after
   * `timeout` ms, when any left are cut off. Idempotent.
   */
  close(timeout = 5_000): Promise<void> {
    return this.#closed ??= this.#shutdown(timeout);
  }

  /** Same as {@linkcode Comet.close} with its default timeout. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(timeout: number): Promise<void> {
    this.#closing = true;
    this.#pacing.abort();
    const drained = new Promise<void>((resolve) => (this.#drained = resolve));
    for (const ch of this.#handshaking) ch.close("server shutting down");
    for (const bucket of this.#buckets) {
      for (const ch of bucket.channels.values()) ch.close("server shutting down");
    }
    if (this.#live === 0) this.#drained!();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeout);
    });
    const timedOut = await Promise.race([drained.then(() => false), late]);
    clearTimeout(timer);
    if (timedOut) {
      this.logger.warn("Shutdown timed out; cutting connections off", { live: this.#live });
      for (const ch of this.#handshaking) ch.abort();
      for (const bucket of this.#buckets) for (const ch of bucket.channels.values()) ch.abort();
      // Aborted sessions end within a few turns; wait for their cleanup (rooms, counts,
      // operator.disconnect) so that close() resolves on an idle hub, but not forever:
      // an operator's disconnect may hang.
      const settle = new AbortController();
      await Promise.race([drained, _sleep(timeout, settle.signal)]);
      settle.abort();
    }
    this.#timers.close();
    this.#writes.close();
  }

  /**
   * Applies the connection limits to a new connection from `ip`; counts it
   * in when admitted. No timer anywhere: the per-IP token bucket refills by
   * the time elapsed since it was last looked at.
   */
  #admit(ip: string): boolean {
    if (this.#live >= this.#maxConnections) return this.#refuse("connections", ip);
    if (!this.#perIp) return true;
    const now = this.#timers.now();
    if (now - this.#sweptAt >= _SWEEP_INTERVAL) this.#sweep(now);
    let peer = this.#peers.get(ip);
    if (peer === undefined) {
      peer = {
        live: 0,
        tokens: Math.max(this.#connectRate, 1),
        at: now,
        failures: 0,
        since: -Infinity,
        barredUntil: -Infinity,
      };
      this.#peers.set(ip, peer);
    }
    if (now < peer.barredUntil) return this.#refuse("authAttempts", ip);
    if (peer.live >= this.#maxPerIp) return this.#refuse("connectionsPerIp", ip);
    if (this.#connectRate !== Infinity) {
      const rate = this.#connectRate;
      peer.tokens = _refill(peer.tokens, peer.at, now, rate);
      peer.at = now;
      if (peer.tokens < 1) return this.#refuse("connectRate", ip);
      peer.tokens--;
    }
    peer.live++;
    return true;
  }

  #refuse(limit: keyof LimitHits, ip: string): false {
    this.#stats.limitHits[limit]++;
    this.logger.debug("Connection refused by a limit", { remote: ip, limit });
    return false;
  }

  /** Forgets addresses with nothing left to remember: no connection, a full bucket, no bar. */
  #sweep(now: number): void {
    this.#sweptAt = now;
    const rate = this.#connectRate;
    const burst = Math.max(rate, 1);
    for (const [ip, peer] of this.#peers) {
      if (
        peer.live === 0 && now >= peer.barredUntil && now - peer.since >= this.#authWindow &&
        (rate === Infinity || _refill(peer.tokens, peer.at, now, rate) >= burst)
      ) {
        this.#peers.delete(ip);
      }
    }
  }

  /** Counts a refused authentication against its address; bars it at the limit. */
  #authFailedFrom(ip: string): void {
    if (this.#maxAuthAttempts === Infinity) return;
    const peer = this.#peers.get(ip);
    if (peer === undefined) return;
    const now = this.#timers.now();
    if (now - peer.since >= this.#authWindow) {
      peer.since = now;
      peer.failures = 0;
    }
    if (++peer.failures < this.#maxAuthAttempts) return;
    peer.barredUntil = now + this.#authWindow;
    peer.failures = 0;
    peer.since = -Infinity;
    this.logger.warn("Too many refused authentications: refusing the address for a while", {
      remote: ip,
      attempts: this.#maxAuthAttempts,
      seconds: this.#authWindow / 1000,
    });
  }

  /**
   * Whether a client may move into `room`: it has members here, the node is
   * below its room limit, or the client leaves a room only it is in.
   */
  #roomAllowed(room: string, from: string): boolean {
    return room === "" || this.#roomCounts.size < this.#maxRooms || this.#roomCounts.has(room) ||
      (from !== "" && this.#roomCounts.get(from) === 1);
  }

  #roomRefused(ch: Channel, room: string): void {
    this.#stats.limitHits.rooms++;
    this.logger.debug("Room limit reached", { key: ch.key, room, rooms: this.#roomCounts.size });
    ch.close("room limit: too many rooms on this node");
  }

  /** Takes one token of the channel's upstream bucket; false when it is empty. */
  #takeUpstream(ch: Channel): boolean {
    const now = this.#timers.now();
    const rate = this.#upstreamRate;
    const tokens = _refill(ch._upTokens, ch._upAt, now, rate);
    ch._upAt = now;
    if (tokens < 1) {
      ch._upTokens = tokens;
      return false;
    }
    ch._upTokens = tokens - 1;
    return true;
  }

  /** One step of a traced connection, at info level. */
  #trace(ch: Channel, step: string, fields?: LogFields): void {
    this.logger.info(`Trace: ${step}`, { mid: ch.mid, key: ch.key, ...fields });
  }

  /**
   * Checks that `copies` references to `frame` fit in the backlog.
   *
   * @throws {BacklogFullError} When they do not; counted.
   */
  #fits(frame: Uint8Array, copies: number): void {
    const backlog = this.#backlog;
    if (backlog.admits(frame.length, copies)) return;
    this.#full(
      "server",
      `Backlog is full: ${backlog.bytes} bytes queued, ${
        frame.length * copies
      } more would pass the cap of ${backlog.maxBytes}`,
    );
  }

  /** Counts a push refused by a backlog cap and throws its error. */
  #full(scope: "room" | "server", message: string): never {
    this.#stats.pushesRefused[scope]++;
    throw new BacklogFullError(message, scope);
  }

  #pushBucket(bucket: Bucket, frame: Uint8Array, shared: SharedFrame, op: number): number {
    let n = 0;
    for (const ch of bucket.channels.values()) {
      if (ch.watches(op) && ch.pushShared(frame, shared)) n++;
    }
    this.#stats.deliveries += n;
    return n;
  }

  async #pushAllPaced(
    frame: Uint8Array,
    shared: SharedFrame,
    op: number,
    speed: number,
  ): Promise<void> {
    const signal = this.#pacing.signal;
    for (const bucket of this.#buckets) {
      if (signal.aborted) return;
      const size = bucket.size;
      this.#pushBucket(bucket, frame, shared, op);
      const pause = (size / speed) * 1000;
      if (pause >= 1) await _sleep(pause, signal);
    }
  }

  /**
   * Acts on client ops until the connection ends: each frame goes to
   * `#clientFrame`. A wire that delivers its own frames (`Wire._listen`)
   * costs an idle connection nothing more than its socket read; other wires
   * are pulled with `read()`.
   */
  #clientOps(ch: Channel): void {
    const wire = ch.wire;
    if (wire._listen !== undefined) wire._listen(ch);
    else _pull(wire, ch);
  }

  /**
   * Acts on one client frame (see {@linkcode FrameReader._frame}). Whether
   * the wire may hand over the next one: `true`, `false` once the session has
   * ended, or a promise (an op that must finish first, or a full queue).
   * Never throws, and the promise never rejects.
   */
  #clientFrame(ch: Channel, frame: Frame): boolean | Promise<boolean> {
    // Once closing (slow, replaced, shutting down) or aborted, stop acting on
    // client frames: a heartbeat would push the close grace out to a full
    // heartbeat deadline, and a room change would rejoin a dying channel.
    if (ch.state !== "open") return this.#stopReading(ch);
    let wait: Promise<void> | undefined;
    try {
      wait = this.#clientOp(ch, frame);
    } catch (err) {
      return this.#stopReading(ch, err);
    }
    if (wait === undefined) return this.#readOn(ch);
    return wait.then(() => this.#readOn(ch), (err) => this.#stopReading(ch, err));
  }

  /** Whether the wire may go on: at once, or once the writer has made room in a full queue. */
  #readOn(ch: Channel): boolean | Promise<boolean> {
    if (ch.state !== "open") return this.#stopReading(ch);
    // A full queue pauses reading: the client is throttled by its own TCP window.
    const writable = ch._writable();
    return writable === undefined ? true : writable.then(() => this.#readOn(ch));
  }

  /** The session ends here; the wire reads no more. */
  #stopReading(ch: Channel, err?: unknown): false {
    this.#end(ch, true, err);
    return false;
  }

  /**
   * Acts on one client op. Returns a promise when the next read must wait
   * for it; throws {@linkcode ProtocolError} on a malformed op. An op that
   * closes the connection leaves it no longer open, which ends the reading.
   */
  #clientOp(ch: Channel, frame: Frame): Promise<void> | undefined {
    const { op, seq, ver, body } = frame;
    switch (op) {
      case Op.Heartbeat: {
        this.#rearm(ch);
        // A quiet moment for this connection: storage its queue grew under pushes goes.
        if (ch.queued === 0) ch._trim();
        const online = new Uint8Array(4);
        const count = this.#heartbeatOnline(ch._room);
        _putInt32(online, 0, count);
        ch.reply(Op.HeartbeatReply, online, seq, ver);
        if (ch._traced) this.#trace(ch, "heartbeat", { seq, online: count });
        if (this.#observer?.heartbeat) this.#notify("heartbeat", ch);
        if (this.#operator.heartbeat) this.#callHeartbeat(ch);
        return;
      }
      case Op.SendMsg: {
        if (this.#upstreamRate !== Infinity && !this.#takeUpstream(ch)) {
          this.#stats.limitHits.upstreamRate++;
          this.logger.debug("Upstream rate limit reached", { key: ch.key });
          ch.close("rate limit: upstream messages");
          return;
        }
        if (ch._traced) this.#trace(ch, "upstream message", { seq, bytes: body.length });
        if (!this.#operator.receive) {
          ch.reply(Op.SendMsgReply, body, seq, ver);
          return;
        }
        // Upstream messages run side by side (bounded), so a slow operator holds up
        // neither this client's heartbeats nor its other requests; seq matches replies.
        if (ch._inflight >= _MAX_INFLIGHT) return this.#receiveWhenFree(ch, frame);
        ch._inflight++;
        this.#receive(ch, frame);
        return;
      }
      case Op.ChangeRoom: {
        const room = _decoder.decode(body);
        if (ch._rooms !== undefined && room !== "" && !ch._rooms.includes(room)) {
          // Refused out loud: an op-13 reply would let the client believe it moved.
          this.#stats.roomRefused++;
          if (ch._traced) this.#trace(ch, "room refused", { seq, to: room });
          ch.close(`room refused: ${room.slice(0, 64)}`);
          return;
        }
        // Checked before the cluster hears of the room; joins in flight may overshoot a little.
        if (room.length <= _MAX_ID_LENGTH && !this.#roomAllowed(room, ch._room)) {
          this.#roomRefused(ch, room);
          return;
        }
        if (
          this.#observer?.joining && room !== "" && room !== ch._room &&
          room.length <= _MAX_ID_LENGTH
        ) {
          return this.#wait("joining", () => this.#observer?.joining?.(ch, room)).then(() => {
            // Closed meanwhile: the reading ends instead.
            if (ch.state === "open") this.#roomChanged(ch, room, frame);
          });
        }
        this.#roomChanged(ch, room, frame);
        return;
      }
      case Op.Sub: {
        const ops = _parseOps(body);
        ch.watch(ops);
        if (ch.watchCount > _MAX_WATCH) {
          throw new ProtocolError(`Watching more than ${_MAX_WATCH} ops`);
        }
        ch.reply(Op.SubReply, body, seq, ver);
        if (ch._traced) this.#trace(ch, "watch", { seq, ops: ops.join(",") });
        return;
      }
      case Op.Unsub: {
        const ops = _parseOps(body);
        ch.unwatch(ops);
        ch.reply(Op.UnsubReply, body, seq, ver);
        if (ch._traced) this.#trace(ch, "unwatch", { seq, ops: ops.join(",") });
        return;
      }
      default:
        this.logger.debug("Ignored client op", { key: ch.key, op });
        if (ch._traced) this.#trace(ch, "ignored op", { seq, op });
    }
  }

  #roomChanged(ch: Channel, room: string, { body, seq, ver }: Frame): void {
    const from = ch._room;
    this.changeRoom(ch, room);
    ch.reply(Op.ChangeRoomReply, body, seq, ver);
    if (ch._traced) this.#trace(ch, "room changed", { seq, from, to: room });
  }

  /** Ends a session, however it ended, once; `serve`'s promise settles when all is cleaned up. */
  #end(ch: Channel, registered: boolean, err?: unknown): void {
    const onEnd = this.#onEnds.get(ch);
    if (onEnd !== undefined) this.#onEnds.delete(ch);
    this.#finish(ch, registered, err)
      .catch((error) => this.logger.error("Session crashed", { key: ch.key, error }))
      .finally(onEnd);
  }

  /** A protocol error closes the connection with its reason; then the cleanup. */
  async #finish(ch: Channel, registered: boolean, err: unknown): Promise<void> {
    if (err !== undefined) {
      if (err instanceof ProtocolError || err instanceof RangeError) {
        this.#stats.protocolErrors++;
        this.logger.debug("Protocol error", { key: ch.key, error: err });
        ch.close(`protocol error: ${err.message}`);
      } else {
        this.logger.warn("Connection failed", { key: ch.key, error: err });
      }
    }
    this.#handshaking.delete(ch);
    // A graceful close is flushing (bounded by its timer); otherwise the peer is gone.
    if (ch.state !== "closing") ch.abort();
    await ch._done();
    this.#timers.remove(ch._timer!);
    if (this.#perIp) this.#release(ch.info.remoteAddr.hostname);
    if (ch._traced) {
      this.#trace(ch, "closed", { reason: ch._closeReason || "closed by the client or network" });
    }
    if (registered) {
      this.#unregister(ch);
      if (this.#observer?.closed) this.#notify("closed", ch);
      try {
        await this.#operator.disconnect?.(ch);
      } catch (err) {
        this.logger.warn("Operator disconnect failed", { key: ch.key, error: err });
      }
    }
    if (--this.#live === 0) this.#drained?.();
  }

  #release(ip: string): void {
    const peer = this.#peers.get(ip);
    if (peer !== undefined && peer.live > 0) peer.live--;
  }

  /**
   * Asks the operator about the auth frame and registers the session.
   * Whether the connection is registered: at once for a synchronous operator
   * (the usual case: no turn of the event loop is spent waiting), else once
   * the operator or the `opening` observer has answered.
   */
  #authenticate(ch: Channel, frame: Frame): boolean | Promise<boolean> {
    // Asked for once: a wire may make it on each call.
    const info = ch.info;
    let result: Session | PromiseLike<Session>;
    try {
      result = this.#operator.connect({ body: frame.body, info });
    } catch (err) {
      return this.#refused(ch, info, err);
    }
    if (!_isThenable(result)) return this.#session(ch, frame, info, result);
    return Promise.resolve(result).then(
      (session) => this.#session(ch, frame, info, session),
      (err) => this.#refused(ch, info, err),
    );
  }

  /**
   * The operator's answer, checked, then registered: at once, or after the
   * `opening` observer has been heard.
   */
  #session(ch: Channel, frame: Frame, info: ConnInfo, result: Session): boolean | Promise<boolean> {
    let session: _Normalized;
    try {
      session = this.#normalize(result);
    } catch (err) {
      return this.#refused(ch, info, err);
    }
    // The upgrade headers are for the operator's connect alone: a kilobyte or
    // more per connection is not kept for the connection's whole life.
    _dropHeaders(info);
    if (!this.#roomAllowed(session.room, "")) {
      this.#roomRefused(ch, session.room);
      return false;
    }
    if (!this.#observer?.opening) return this.#opened(ch, frame, info, session);
    const { key, mid, room } = session;
    return this.#wait("opening", () => this.#observer?.opening?.({ key, mid, room })).then(() =>
      this.#opened(ch, frame, info, session)
    );
  }

  /** Registers the session and answers the auth frame, unless closed meanwhile. */
  #opened(ch: Channel, frame: Frame, info: ConnInfo, session: _Normalized): boolean {
    if (this.#closing || ch.state !== "handshake") {
      ch.close("server shutting down");
      return false;
    }
    this.#register(ch, session, info.remoteAddr.hostname);
    ch.reply(Op.AuthReply, "", frame.seq, frame.ver);
    this.#stats.authOk++;
    this.logger.debug("Connected", { key: ch.key, mid: ch.mid, room: ch.room });
    if (ch._traced) {
      this.#trace(ch, "authenticated", {
        room: ch.room,
        platform: ch.platform,
        transport: info.transport,
        remote: info.remoteAddr.hostname,
        ...(session.expiresAt !== Infinity && {
          expires: new Date(session.expiresAt).toISOString(),
        }),
      });
    }
    return true;
  }

  /** The operator refused the client (or failed): the connection closes with the reason. */
  #refused(ch: Channel, info: ConnInfo, err: unknown): false {
    _dropHeaders(info);
    this.#stats.authFailed++;
    const message = err instanceof Error ? err.message : String(err);
    const remote = info.remoteAddr.hostname;
    this.logger.debug("Auth refused", { remote, error: message });
    ch.close(`auth failed: ${message}`);
    // An auth service that is down or busy is not the client's doing: only
    // refusals count towards barring its address.
    if (!(err instanceof WebhookError) || err.reason === "refused") this.#authFailedFrom(remote);
    return false;
  }

  #normalize(s: Session): _Normalized {
    if (typeof s !== "object" || s === null) throw new TypeError("Operator returned no session");
    const mid = s.mid ?? 0;
    if (!Number.isSafeInteger(mid) || mid < 0) {
      throw new TypeError(`Session mid must be a non-negative safe integer: ${mid}`);
    }
    const key = s.key || crypto.randomUUID();
    const room = s.room ?? "";
    if (typeof key !== "string" || key.length > _MAX_ID_LENGTH) {
      throw new TypeError(`Session key must be a string of at most ${_MAX_ID_LENGTH} characters`);
    }
    if (typeof room !== "string" || room.length > _MAX_ID_LENGTH) {
      throw new TypeError(`Session room must be a string of at most ${_MAX_ID_LENGTH} characters`);
    }
    const accepts = s.accepts ?? [];
    if (!Array.isArray(accepts) || accepts.length > _MAX_WATCH || !accepts.every(_isInt32)) {
      throw new TypeError("Session accepts must be an array of 32-bit integers");
    }
    const heartbeat = _positive("Session heartbeat", s.heartbeat, this.#heartbeatTimeout);
    const expiresAt = s.expiresAt ?? Infinity;
    if (typeof expiresAt !== "number" || Number.isNaN(expiresAt)) {
      throw new TypeError(`Session expiresAt must be epoch milliseconds: ${expiresAt}`);
    }
    if (expiresAt <= Date.now()) throw new TypeError("Session has already expired");
    const rooms = s.rooms;
    if (rooms !== undefined) {
      if (
        !Array.isArray(rooms) || rooms.length > _MAX_WATCH ||
        !rooms.every((r) => typeof r === "string" && r.length <= _MAX_ID_LENGTH)
      ) {
        throw new TypeError(`Session rooms must be at most ${_MAX_WATCH} room ids`);
      }
      if (room !== "" && !rooms.includes(room)) {
        throw new TypeError(`Session room is not among its allowed rooms: ${room}`);
      }
    }
    const platform = String(s.platform ?? "");
    return { mid, key, room, accepts, platform, heartbeat, expiresAt, rooms };
  }

  #register(ch: Channel, s: _Normalized, ip: string): void {
    ch.key = s.key;
    ch.mid = s.mid;
    ch.platform = s.platform;
    ch.watch(s.accepts);
    ch._heartbeat = s.heartbeat;
    ch._rooms = s.rooms;
    ch._traced = this.#traceMids !== undefined && this.#traceMids.has(s.mid);
    if (this.#upstreamRate !== Infinity) {
      ch._upTokens = Math.max(this.#upstreamRate, 1);
      ch._upAt = this.#timers.now();
    }
    // The heap runs on performance.now(); expiresAt is wall-clock time.
    ch._expiresAt = s.expiresAt === Infinity
      ? Infinity
      : this.#timers.now() + (s.expiresAt - Date.now());
    ch._open();
    this.#handshaking.delete(ch);
    const old = this.bucket(ch.key).put(ch);
    // The replaced connection leaves its room and user index in its own session's cleanup.
    old?.close("replaced by a new connection with the same key");
    if (ch.mid !== 0) {
      const entry = this.#mids.get(ch.mid);
      if (entry === undefined) this.#mids.set(ch.mid, ch);
      else if (entry instanceof Channel) this.#mids.set(ch.mid, new Set([entry, ch]));
      else entry.add(ch);
    }
    this.#ipCounts.set(ip, (this.#ipCounts.get(ip) ?? 0) + 1);
    this.#connections++;
    if (s.room !== "") this.#join(ch, s.room);
    this.#rearm(ch);
    if (this.#observer?.opened) this.#notify("opened", ch);
  }

  #unregister(ch: Channel): void {
    this.#leave(ch);
    this.bucket(ch.key).delete(ch);
    if (ch.mid !== 0) {
      const entry = this.#mids.get(ch.mid);
      if (entry === ch) this.#mids.delete(ch.mid);
      else if (entry instanceof Set) {
        entry.delete(ch);
        if (entry.size === 1) this.#mids.set(ch.mid, entry.values().next().value!);
      }
    }
    const ip = ch.info.remoteAddr.hostname;
    const ips = (this.#ipCounts.get(ip) ?? 1) - 1;
    if (ips === 0) this.#ipCounts.delete(ip);
    else this.#ipCounts.set(ip, ips);
    this.#connections--;
  }

  #join(ch: Channel, room: string): void {
    this.bucket(ch.key).join(ch, room);
    const count = (this.#roomCounts.get(room) ?? 0) + 1;
    this.#roomCounts.set(room, count);
    if (count === 1 && this.#observer?.roomOpened) this.#notify("roomOpened", room);
  }

  #leave(ch: Channel): void {
    const room = ch._room;
    if (room === "") return;
    this.bucket(ch.key).leave(ch);
    const left = (this.#roomCounts.get(room) ?? 1) - 1;
    if (left !== 0) this.#roomCounts.set(room, left);
    else {
      this.#roomCounts.delete(room);
      if (this.#observer?.roomClosed) this.#notify("roomClosed", room);
    }
  }

  /** The count a heartbeat reply carries: the observer's (cluster-wide) or this hub's. */
  #heartbeatOnline(room: string): number {
    const observer = this.#observer;
    if (observer?.roomOnline === undefined) return this.roomOnline(room);
    try {
      const n = observer.roomOnline(room);
      // An int32 goes on the wire; a broken observer must not turn into a wrong count.
      return _isInt32(n) && n >= 0 ? n : this.roomOnline(room);
    } catch (err) {
      this.logger.warn("Observer roomOnline failed", { room, error: err });
      return this.roomOnline(room);
    }
  }

  /** Runs an observer call the client waits for; a failure is logged, not the client's. */
  async #wait(event: "opening" | "joining", call: () => void | Promise<void>): Promise<void> {
    try {
      await call();
    } catch (err) {
      this.logger.warn("Observer failed", { event, error: err });
    }
  }

  #notify<E extends _Event>(event: E, arg: Parameters<NonNullable<CometObserver[E]>>[0]): void {
    const observer = this.#observer;
    try {
      (observer?.[event] as ((arg: Channel | string) => void) | undefined)?.call(observer, arg);
    } catch (err) {
      this.logger.warn("Observer failed", { event, error: err });
    }
  }

  /** Waits for a free upstream slot, then hands the message to the operator. */
  async #receiveWhenFree(ch: Channel, frame: Frame): Promise<void> {
    while (ch._inflight >= _MAX_INFLIGHT) {
      await new Promise<void>((resolve) => (ch._onSlot = resolve));
    }
    ch._inflight++;
    this.#receive(ch, frame);
  }

  /**
   * Hands an upstream message to the operator. A synchronous operator's
   * reply is queued at once, so replies go out in the order the requests
   * came; an asynchronous one's when it settles.
   */
  #receive(ch: Channel, frame: Frame): void {
    let reply: ReplyBody | undefined | PromiseLike<ReplyBody | undefined>;
    try {
      reply = this.#operator.receive!(ch, frame);
    } catch (err) {
      return this.#receiveFailed(ch, err);
    }
    if (!_isThenable(reply)) return this.#received(ch, frame, reply);
    Promise.resolve(reply).then(
      (body) => this.#received(ch, frame, body),
      (err) => this.#receiveFailed(ch, err),
    );
  }

  #received(ch: Channel, frame: Frame, reply: ReplyBody | undefined): void {
    try {
      if (reply !== undefined) ch.reply(Op.SendMsgReply, reply, frame.seq, frame.ver);
    } catch (err) {
      // A reply body that is neither bytes nor text.
      return this.#receiveFailed(ch, err);
    }
    this.#slotFreed(ch);
  }

  #receiveFailed(ch: Channel, err: unknown): void {
    this.logger.warn("Operator receive failed", { key: ch.key, error: err });
    this.#slotFreed(ch);
  }

  /** An upstream message is done with: a reader waiting for a slot goes on. */
  #slotFreed(ch: Channel): void {
    ch._inflight--;
    const wake = ch._onSlot;
    ch._onSlot = undefined;
    wake?.();
  }

  #callHeartbeat(ch: Channel): void {
    Promise.resolve()
      .then(() => this.#operator.heartbeat!(ch))
      .catch((err) => this.logger.warn("Operator heartbeat failed", { key: ch.key, error: err }));
  }

  /**
   * One timer entry per channel: its deadline is the earlier of the next
   * heartbeat deadline and the credentials' expiry; #expire tells them apart.
   */
  #rearm(ch: Channel): void {
    this.#timers.resetAt(ch._timer!, Math.min(this.#timers.now() + ch._heartbeat, ch._expiresAt));
  }

  #expire(ch: Channel): void {
    if (ch.state === "handshake") {
      this.#stats.handshakeTimeouts++;
      this.logger.debug("Handshake timed out", { remote: ch.info.remoteAddr.hostname });
      ch._closeReason = "handshake timeout";
    } else if (ch.state === "open" && this.#timers.now() >= ch._expiresAt) {
      // A graceful close: the client learns why, and the close grace re-arms the timer.
      this.#stats.tokenExpired++;
      this.logger.debug("Credentials expired", { key: ch.key });
      ch.close("token expired");
      return;
    } else if (ch.state === "open") {
      this.#stats.heartbeatTimeouts++;
      this.logger.debug("Heartbeat timed out", { key: ch.key });
      ch._closeReason = "heartbeat timeout";
    } else if (ch._traced && ch._closeReason !== "") {
      ch._closeReason += ", cut off after the close grace";
    }
    ch.abort();
  }
}

function _sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/**
 * Forgets the upgrade headers. Assigned, not deleted: `delete` turns the
 * object into a hash table, about 250 bytes more for every WebSocket
 * connection's whole life.
 */
function _dropHeaders(info: ConnInfo): void {
  if (info.headers !== undefined) info.headers = undefined;
}
