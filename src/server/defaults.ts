/**
 * The hub's default settings in one place: what a {@linkcode Comet} uses
 * for an option left out, and what the `comet` command, `serve()` and the
 * docs start from.
 *
 * @module
 */
import { DEFAULT_MAX_BODY } from "../protocol/frame.ts";
import { DEFAULT_BACKLOG } from "./backlog.ts";

export { DEFAULT_BACKLOG, DEFAULT_MAX_BODY };

/** Buckets the connections are sharded into. */
export const DEFAULT_BUCKETS = 32;
/** Milliseconds a connection may take to authenticate. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 5_000;
/** Milliseconds a connection may stay silent after its last heartbeat (8 min). */
export const DEFAULT_HEARTBEAT_TIMEOUT = 480_000;
/** Frames pushed to one connection alone queued at most before the slow policy applies. */
export const DEFAULT_QUEUE_SIZE = 128;
/** Milliseconds a socket may refuse writes, while a full queue waits, before it is slow. */
export const DEFAULT_WRITE_TIMEOUT = 2_000;
/** Milliseconds a graceful close may spend flushing before the socket is cut. */
export const DEFAULT_CLOSE_GRACE = 1_000;
/** Socket writes in flight at most. */
export const DEFAULT_WRITE_CONCURRENCY = 128;
/** Write turns started per visit of the event loop. */
export const DEFAULT_WRITE_BURST = 8;
/** Milliseconds `Comet.close` waits for connections to flush before cutting them off. */
export const DEFAULT_SHUTDOWN_TIMEOUT = 5_000;

/** Longest key or room id, in UTF-16 code units; not a setting. */
export const MAX_ID_LENGTH = 256;
/** Most ops one connection may watch, and most rooms a session may list; not a setting. */
export const MAX_WATCH = 1024;

/**
 * The limits the `comet` command applies unless told otherwise (see
 * `CometLimits` for what each means): generous for well-behaved clients,
 * including many behind one NAT address, and small enough that one host
 * cannot take a node down.
 *
 * @example
 * ```ts
 * import { DEFAULT_LIMITS } from "./defaults.ts";
 * console.log(DEFAULT_LIMITS.upstreamRate); // 100
 * ```
 */
export const DEFAULT_LIMITS: Readonly<{
  /** Connections at once. */
  maxConnections: number;
  /** Connections at once from one IP address. */
  maxConnectionsPerIp: number;
  /** New connections per second from one IP address. */
  connectRate: number;
  /** Refused authentications from one IP address within `authWindow`. */
  maxAuthAttempts: number;
  /** The window of `maxAuthAttempts`, in milliseconds. */
  authWindow: number;
  /** Upstream messages per second per connection. */
  upstreamRate: number;
  /** Rooms with members on this node. */
  maxRooms: number;
  /** Reverse proxies whose connections name their clients: none. */
  trustProxy: readonly string[];
}> = Object.freeze({
  maxConnections: 100_000,
  maxConnectionsPerIp: 1_000,
  connectRate: 200,
  maxAuthAttempts: 20,
  authWindow: 60_000,
  upstreamRate: 100,
  maxRooms: 100_000,
  trustProxy: Object.freeze([]),
});
