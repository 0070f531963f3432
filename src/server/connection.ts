import type { ChannelState } from "./channel_options.ts";
import type { ConnInfo } from "./wire.ts";

/**
 * One client connection as an {@linkcode Operator} or a
 * {@linkcode CometObserver} sees it: who it is, where it came from, what it
 * watches, and the two things an application may do to it, send it a frame
 * or close it. The hub's own bookkeeping stays behind this view, so an
 * operator written against it keeps working however the hub keeps its
 * connections.
 *
 * @example
 * ```ts
 * import type { Connection } from "./connection.ts";
 *
 * function greet(connection: Connection): void {
 *   connection.send(1000, `welcome, user ${connection.mid}`);
 * }
 * ```
 */
export interface Connection {
  /** The connection's key; empty until authenticated. */
  readonly key: string;
  /** The user id; 0 when anonymous. */
  readonly mid: number;
  /** The platform the client reported at auth. */
  readonly platform: string;
  /** The room the connection is in; empty when none. */
  readonly room: string;
  /** Transport facts: kind, remote address, upgrade headers. */
  readonly info: ConnInfo;
  /** Where the connection is in its life. */
  readonly state: ChannelState;
  /** Frames waiting for the writer, its room's included. */
  readonly queued: number;
  /** Whether a push of business op `op` to keys, mids or all reaches this connection. */
  watches(op: number): boolean;
  /** The watched ops, in no particular order. */
  watched(): number[];
  /**
   * Encodes and queues one frame to this connection alone. Never blocks; a
   * connection that does not read is handled by the hub's slow-consumer rule.
   *
   * @returns Whether the frame was queued (false once closing).
   */
  send(op: number, body?: Uint8Array | string, seq?: number, ver?: number): boolean;
  /**
   * Says goodbye: queues op 6 with `reason` after whatever is queued,
   * flushes within the hub's close grace, then closes.
   */
  close(reason?: string): void;
}
