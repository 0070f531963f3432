/**
 * The contract between a room's log and its members. A {@linkcode Room}
 * (see room.ts) appends each frame pushed to the room once; every member
 * keeps a cursor into that log, and its writer takes what follows the cursor
 * in its next write. The room sees its members only as
 * {@linkcode RoomMember}s, and a member sees the room only as a
 * {@linkcode RoomLog}, so neither file imports the other.
 *
 * The `_` members belong to the two sides of this contract alone.
 *
 * @module
 */

import type { SharedFrame } from "./frame_queue.ts";

/** A run of log frames encoded once, for every member whose wire shares the encoding. */
export interface LogRun {
  /** The shared encoding it was made in (see `Wire.sharedEncoding`). */
  key: object;
  /** Number of its first frame. */
  from: number;
  /** Number after its last frame. */
  to: number;
  /** Whether it stopped short of the log's end for the write's byte budget. */
  full: boolean;
  /** The encoded bytes. */
  bytes: Uint8Array;
}

/**
 * What a member reads of its room: the frames pushed to it, by number, and
 * the runs of them already encoded.
 *
 * @example
 * ```ts
 * import type { RoomLog } from "./room_member.ts";
 *
 * function pending(log: RoomLog, cursor: number): number {
 *   return log._end - cursor;
 * }
 * ```
 */
export interface RoomLog {
  /** @internal The number the next frame pushed gets. */
  readonly _end: number;
  /** @internal Frame number `n`; the caller makes sure the log holds it. */
  _frame(n: number): Uint8Array;
  /**
   * @internal The number after the last of the frames from `from` (before
   * `end`) that fit in `budget` bytes; with `one`, the first frame is taken
   * even if it alone is larger.
   */
  _span(from: number, end: number, budget: number, one?: boolean): number;
  /** @internal Copies frames `from` to `to` into `out` at `at`; returns their bytes. */
  _copy(from: number, to: number, out: Uint8Array[], at: number): number;
  /** @internal The run a member at `from` takes next in encoding `key`, if one is kept. */
  _run(key: object, from: number, end: number): LogRun | undefined;
  /** @internal Remembers `bytes` as frames `from` to `to` in encoding `key`. */
  _keepRun(key: object, from: number, to: number, end: number, bytes: Uint8Array): void;
  /** @internal `member`'s writer went idle with nothing left: the next push wakes it. */
  _park(member: RoomMember): void;
  /** @internal `member` stops reading the log: it is closing or leaving. */
  _detach(member: RoomMember): void;
}

/**
 * What a room needs of each member: its place in the room, its cursor into
 * the log, whether it still reads, and the slow-consumer rule it applies to
 * itself. The hub's `Channel` is the one implementation.
 *
 * @example
 * ```ts
 * import type { RoomMember } from "./room_member.ts";
 *
 * function behind(member: RoomMember): number {
 *   return member._log === undefined ? 0 : member._log._end - member._cursor;
 * }
 * ```
 */
export interface RoomMember {
  /** @internal Room id; empty when in no room. */
  _room: string;
  /** @internal Slot in the room's member array, for O(1) removal. */
  _roomSlot: number;
  /** @internal The log this member reads; undefined when in none, or closing. */
  _log: RoomLog | undefined;
  /** @internal Number of the next frame of `_log` this member takes. */
  _cursor: number;
  /** @internal Slot in the room's list of idle members; -1: not in it. */
  _idleSlot: number;
  /**
   * @internal Whether it takes the room's pushes as op-18 frames in its own
   * queue rather than from the log; fixed at auth.
   */
  readonly _streamed: boolean;
  /** @internal Slot in the room's list of streamed members; -1: not in it. */
  _streamSlot: number;
  /** @internal Queues an op-18 frame shared with the room's other streamed members. */
  pushShared(frame: Uint8Array, shared: SharedFrame): boolean;
  /**
   * @internal A streamed member whose places in its streams are answered
   * and who holds nothing back: it may read the room's op-18 log.
   */
  _settled(): boolean;
  /** @internal Whether every step of this member is logged. */
  readonly _traced: boolean;
  /** @internal Frames queued at most before the slow policy applies. */
  readonly _capacity: number;
  /** @internal Frames in the member's own queue (not the room's log). */
  readonly _own: number;
  /** @internal Whether the member still takes frames: it is not closing or closed. */
  _reads(): boolean;
  /** @internal Whether its writer is in the write line or writing. */
  _busy(): boolean;
  /** @internal A frame was appended to the log: an idle writer joins the write line. */
  _kick(): void;
  /** @internal A room push this traced member will take. */
  _roomPushed(frame: Uint8Array): void;
  /**
   * @internal Moves the log frames it has not taken into its own queue (at
   * most `limit`); returns how many were left behind.
   */
  _catchUp(limit?: number): number;
  /** @internal Whether its socket has refused writes for the write timeout at time `now`. */
  _stuck(now: number): boolean;
  /** @internal The log is about to append frame `end` to this slow, full member. */
  _full(end: number): void;
}
