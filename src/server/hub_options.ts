import type { Logger } from "../log.ts";
import type { BacklogLimits } from "./backlog.ts";
import type { SlowPolicy } from "./channel_options.ts";
import type { CometObserver } from "./comet_observer.ts";
import type { CometLimits } from "./limits.ts";
import type { Operator } from "./operator.ts";
import type { StreamHistory } from "./streams.ts";

/**
 * Options for {@linkcode Comet}. Durations are in milliseconds.
 *
 * @example
 * ```ts
 * import type { CometOptions } from "./comet.ts";
 *
 * const options: CometOptions = {
 *   heartbeatTimeout: 240_000,
 *   slow: "drop",
 *   backlog: { maxBytes: 512 * 1024 * 1024 },
 *   limits: { maxConnectionsPerIp: 100 },
 * };
 * ```
 */
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
  /**
   * Streams (docs/protocol.md, section 8): stamps pushes to rooms, users and
   * everyone, and answers clients that opted in with `recover` where their
   * streams stand, replaying what they missed. `serve()` gives a
   * {@linkcode MemoryHistory} (or its cluster's history) unless told
   * `historySize: 0`. Default: none, streams off (opted-in clients are told so).
   */
  history?: StreamHistory;
  /** Aborting closes the hub as {@linkcode Comet.close} does. */
  signal?: AbortSignal;
}

/**
 * Bytes waiting to be written to a hub's connections; see {@linkcode Comet.backlog}.
 *
 * @example
 * ```ts
 * import { type BacklogFigures, Comet } from "./comet.ts";
 *
 * await using comet = new Comet();
 * const backlog: BacklogFigures = comet.backlog;
 * console.log(backlog.queueBytes + backlog.roomBytes, backlog.maxBytes); // 0 268435456
 * ```
 */
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

/**
 * Options of {@linkcode Comet.pushAll}.
 *
 * @example
 * ```ts
 * import { Comet, type PushAllOptions } from "./comet.ts";
 *
 * await using comet = new Comet();
 * const paced: PushAllOptions = { speed: 5_000 };
 * comet.pushAll(1000, new TextEncoder().encode("maintenance at 02:00"), paced);
 * ```
 */
export interface PushAllOptions {
  /** Connections per second to pace the broadcast at (goim's `speed`); 0 = at once. */
  speed?: number;
}
