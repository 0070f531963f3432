/**
 * Admission and the limits on what clients may do: connections at once,
 * per IP address and per second, barring an address after refused
 * authentications, rooms per node and upstream messages per connection.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { positive } from "./_util.ts";
import { DEFAULT_LIMITS } from "./defaults.ts";
import type { Channel } from "./channel.ts";
import { TrustedProxies } from "./trusted_proxies.ts";
// deno-lint-ignore no-unused-vars
import type { OperatorUnavailableError } from "./operator_unavailable_error.ts";

export { DEFAULT_LIMITS } from "./defaults.ts";

/**
 * Limits a `Comet` hub enforces. Connection limits refuse a new
 * connection at accept: its socket is closed before any protocol, and it
 * costs neither a channel nor a timer. The others close the connection with
 * op 6 and a reason. Every hit is counted in `CometStats.limitHits`.
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
   * at accept for one `authWindow`. An operator that could not answer (it
   * threw an {@linkcode OperatorUnavailableError}: its auth service is down
   * or busy) does not count; any other error from `connect` does.
   */
  maxAuthAttempts?: number;
  /** The window of `maxAuthAttempts`, in milliseconds. Default 60 s (see `DEFAULT_LIMITS`). */
  authWindow?: number;
  /**
   * Upstream messages (op 4) per second per connection; bursts of as many
   * are let through. Exceeding it closes the connection with op 6
   * `rate limit: upstream messages`.
   */
  upstreamRate?: number;
  /**
   * Addresses and CIDR ranges of reverse proxies in front of this server
   * (`--trust-proxy`). A connection from one is admitted at accept against
   * `maxConnections` alone; the per-IP limits apply, as soon as its transport has
   * read the client's address from the proxy's header (`X-Forwarded-For`),
   * to that address.
   */
  trustProxy?: readonly string[];
  /**
   * Rooms with members on this node. A client joining a new room beyond it
   * (at auth or with op 12) is closed with op 6
   * `room limit: too many rooms on this node`. Rooms the server itself
   * assigns with `Comet.changeRoom` are not limited.
   */
  maxRooms?: number;
}

/**
 * How many times each limit of {@linkcode CometLimits} was hit.
 *
 * @example
 * ```ts
 * import { Comet } from "./comet.ts";
 * import type { LimitHits } from "./limits.ts";
 *
 * await using comet = new Comet({ limits: { maxConnections: 10_000 } });
 * const hits: LimitHits = comet.stats.limitHits;
 * console.log(hits.connections); // 0
 * ```
 */
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

/** A clock in milliseconds; the hub's timer heap. */
export interface Clock {
  /** The current time. */
  now(): number;
}

/** How often, at most, per-IP records of idle addresses are swept, in ms. */
const _SWEEP_INTERVAL = 10_000;

/**
 * What is kept per client IP address while some per-IP limit is on:
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

/**
 * One hub's limits at work: it admits or refuses each new connection,
 * remembers refused authentications per address, and rations rooms and
 * upstream messages. Each hit is counted in the {@linkcode LimitHits} it is
 * given. No timer anywhere: token buckets refill by the time elapsed since
 * they were last looked at.
 *
 * @example
 * ```ts
 * import { Limits } from "./limits.ts";
 * import { silentLogger } from "../log.ts";
 *
 * const hits = { connections: 0, connectionsPerIp: 0, connectRate: 0, authAttempts: 0, upstreamRate: 0, rooms: 0 };
 * const limits = new Limits({ maxConnectionsPerIp: 1 }, hits, silentLogger, performance);
 * console.log(limits.admit("10.0.0.1", 0), limits.admit("10.0.0.1", 1)); // true false
 * ```
 */
export class Limits {
  /** Upstream messages per second per connection; Infinity: none. */
  readonly upstreamRate: number;
  /** Whether any per-IP limit is on, and so per-IP records are kept. */
  readonly perIp: boolean;
  /** The reverse proxies whose connections name their clients (see `trustProxy`). */
  readonly proxies: TrustedProxies;
  #hits: LimitHits;
  #logger: Logger;
  #clock: Clock;
  #maxConnections: number;
  #maxPerIp: number;
  #connectRate: number;
  #maxAuthAttempts: number;
  #authWindow: number;
  #maxRooms: number;
  #peers = new Map<string, _Peer>();
  #sweptAt = -Infinity;

  /**
   * Checks the limits.
   *
   * @throws {RangeError} When a limit is not a positive number or Infinity,
   * or a trusted proxy is not an address or range.
   */
  constructor(limits: CometLimits, hits: LimitHits, logger: Logger, clock: Clock) {
    this.#hits = hits;
    this.#logger = logger;
    this.#clock = clock;
    this.#maxConnections = _limit("Max connections", limits.maxConnections, true);
    this.#maxPerIp = _limit("Max connections per IP", limits.maxConnectionsPerIp, true);
    this.#connectRate = _limit("Connect rate", limits.connectRate, false);
    this.#maxAuthAttempts = _limit("Max auth attempts", limits.maxAuthAttempts, true);
    this.#authWindow = positive("Auth window", limits.authWindow, DEFAULT_LIMITS.authWindow);
    this.upstreamRate = _limit("Upstream rate", limits.upstreamRate, false);
    this.#maxRooms = _limit("Max rooms", limits.maxRooms, true);
    this.proxies = new TrustedProxies(limits.trustProxy);
    this.perIp = this.#maxPerIp !== Infinity || this.#connectRate !== Infinity ||
      this.#maxAuthAttempts !== Infinity;
  }

  /**
   * Whether a new connection from `ip` may in, with `live` connections
   * already; counts it in when admitted.
   */
  admit(ip: string, live: number): boolean {
    return this.admitTotal(ip, live) && this.admitPeer(ip);
  }

  /** Whether one more connection (from `ip`, for the log) fits `maxConnections`, with `live` already. */
  admitTotal(ip: string, live: number): boolean {
    return live < this.#maxConnections || this.#refuse("connections", ip);
  }

  /**
   * Whether a connection from `ip` passes the per-IP limits; counts it in
   * when it does. For a proxied connection, once its client is known.
   */
  admitPeer(ip: string): boolean {
    if (!this.perIp) return true;
    const now = this.#clock.now();
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

  /** A connection from `ip` that {@linkcode Limits.admit} let in has ended. */
  release(ip: string): void {
    if (!this.perIp) return;
    const peer = this.#peers.get(ip);
    if (peer !== undefined && peer.live > 0) peer.live--;
  }

  /** Counts a refused authentication against its address; bars it at the limit. */
  authFailed(ip: string): void {
    if (this.#maxAuthAttempts === Infinity) return;
    const peer = this.#peers.get(ip);
    if (peer === undefined) return;
    const now = this.#clock.now();
    if (now - peer.since >= this.#authWindow) {
      peer.since = now;
      peer.failures = 0;
    }
    if (++peer.failures < this.#maxAuthAttempts) return;
    peer.barredUntil = now + this.#authWindow;
    peer.failures = 0;
    peer.since = -Infinity;
    this.#logger.warn("Too many refused authentications: refusing the address for a while", {
      remote: ip,
      attempts: this.#maxAuthAttempts,
      seconds: this.#authWindow / 1000,
    });
  }

  /**
   * Whether a client may move into `room` (from `from`) given the node's
   * `rooms`: it has members here, the node is below its room limit, or the
   * client leaves a room only it is in.
   */
  roomAllowed(room: string, from: string, rooms: ReadonlyMap<string, number>): boolean {
    return room === "" || rooms.size < this.#maxRooms || rooms.has(room) ||
      (from !== "" && rooms.get(from) === 1);
  }

  /** Closes `ch`, which asked for `room` beyond the room limit (the node has `rooms`). */
  refuseRoom(ch: Channel, room: string, rooms: number): void {
    this.#hits.rooms++;
    this.#logger.debug("Room limit reached", { key: ch.key, room, rooms });
    ch.close("room limit: too many rooms on this node");
  }

  /** Fills a newly authenticated connection's upstream bucket. */
  startUpstream(ch: Channel): void {
    if (this.upstreamRate === Infinity) return;
    ch._upTokens = Math.max(this.upstreamRate, 1);
    ch._upAt = this.#clock.now();
  }

  /**
   * Takes one token of `ch`'s upstream bucket. When it is empty the
   * connection is closed, counted, and the answer is false.
   */
  upstreamAllowed(ch: Channel): boolean {
    const rate = this.upstreamRate;
    if (rate === Infinity) return true;
    const now = this.#clock.now();
    const tokens = _refill(ch._upTokens, ch._upAt, now, rate);
    ch._upAt = now;
    if (tokens >= 1) {
      ch._upTokens = tokens - 1;
      return true;
    }
    ch._upTokens = tokens;
    this.#hits.upstreamRate++;
    this.#logger.debug("Upstream rate limit reached", { key: ch.key });
    ch.close("rate limit: upstream messages");
    return false;
  }

  #refuse(limit: keyof LimitHits, ip: string): false {
    this.#hits[limit]++;
    this.#logger.debug("Connection refused by a limit", { remote: ip, limit });
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
}
