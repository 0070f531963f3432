import type { LimitHits } from "./limits.ts";

/**
 * Counters of what the hub has done since it started.
 *
 * @example
 * ```ts
 * import { Comet } from "./comet.ts";
 * import type { CometStats } from "./hub_stats.ts";
 *
 * await using comet = new Comet();
 * const stats: Readonly<CometStats> = comet.stats;
 * console.log(stats.accepted, stats.pushes.room); // 0 0
 * ```
 */
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
  /**
   * Streams a client asked to recover at auth (its `recover` field), by
   * result: replayed whole, or not for another epoch, a missed push out of
   * the window, or another room.
   */
  recoveries: { recovered: number; epoch: number; window: number; room: number };
  /** Opted-in connections closed because the history failed to answer. */
  recoveryFailed: number;
}

/**
 * Counters at zero, for a new hub. Each part of the hub adds to the fields
 * it is about; the hub hands out the one object as its live stats.
 *
 * @example
 * ```ts
 * import { newStats } from "./hub_stats.ts";
 * console.log(newStats().pushes.room); // 0
 * ```
 */
export function newStats(): CometStats {
  return {
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
    recoveries: { recovered: 0, epoch: 0, window: 0, room: 0 },
    recoveryFailed: 0,
  };
}
