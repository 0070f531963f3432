import type { Connection } from "./connection.ts";

/**
 * Who an authenticated connection is, as {@linkcode CometObserver.opening} sees it.
 *
 * @example
 * ```ts
 * import type { CometObserver, SessionInfo } from "./comet_observer.ts";
 *
 * const observer: CometObserver = {
 *   opening: ({ key, mid, room }: SessionInfo) => console.log("in:", key, mid, room),
 * };
 * ```
 */
export interface SessionInfo {
  /** The connection's key. */
  readonly key: string;
  /** The user id; 0 when anonymous. */
  readonly mid: number;
  /** The room it joins; empty for none. */
  readonly room: string;
}

/**
 * Hears what happens to a {@linkcode Comet} hub's sessions and rooms, and may
 * supply the online count heartbeat replies carry. A cluster uses it to keep
 * a shared session registry and cluster-wide counts; every method is
 * optional.
 *
 * The hub calls these synchronously on its hot paths (every heartbeat goes
 * through {@linkcode CometObserver.heartbeat} and
 * {@linkcode CometObserver.roomOnline}), so they must return quickly and
 * start any I/O in the background. Only {@linkcode CometObserver.opening} and
 * {@linkcode CometObserver.joining} may make the client wait, so that what
 * they write elsewhere is in place before the client is told it is in. What
 * they throw (or reject with) is logged and otherwise ignored.
 *
 * @example
 * ```ts
 * import { Comet } from "./comet.ts";
 * import type { CometObserver } from "./comet_observer.ts";
 *
 * const observer: CometObserver = {
 *   opened: (connection) => console.log("open", connection.key),
 *   closed: (connection) => console.log("closed", connection.key),
 *   // Heartbeat replies report ten more members than this hub has.
 *   roomOnline: (room) => comet.roomOnline(room) + 10,
 * };
 * await using comet = new Comet({ observer });
 * ```
 */
export interface CometObserver {
  /**
   * A connection authenticated as `session`. The hub waits for the returned
   * promise before it makes the connection reachable and sends the auth
   * reply, so a push sent once the client is in finds it. Keep it short:
   * the client waits.
   */
  opening?(session: SessionInfo): void | Promise<void>;
  /**
   * An open connection asked (op 12) to move to `room`, which it is not in.
   * The hub waits for the returned promise before the move and its reply.
   */
  joining?(connection: Connection, room: string): void | Promise<void>;
  /** A connection authenticated and joined its room (if any). */
  opened?(connection: Connection): void;
  /** An open connection sent a heartbeat; its deadline was just re-armed. */
  heartbeat?(connection: Connection): void;
  /**
   * An authenticated connection ended and has left the hub's indexes. Its
   * key may already belong to a newer connection of the same hub.
   */
  closed?(connection: Connection): void;
  /** Room `room` got its first member on this hub. */
  roomOpened?(room: string): void;
  /** Room `room` lost its last member on this hub. */
  roomClosed?(room: string): void;
  /**
   * The member count heartbeat replies (op 3) report for `room`. Without it
   * the hub reports its own count.
   */
  roomOnline?(room: string): number;
}
