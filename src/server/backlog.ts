/**
 * Caps of a {@linkcode Backlog}, in bytes.
 *
 * @example
 * ```ts
 * import type { BacklogLimits } from "./backlog.ts";
 *
 * const backlog: BacklogLimits = { maxBytes: 1024 * 1024 * 1024, maxRoomBytes: 64 * 1024 * 1024 };
 * ```
 */
export interface BacklogLimits {
  /** Bytes all queues and room logs of one hub may hold. Default 256 MiB. */
  maxBytes?: number;
  /** Bytes one room's log may hold within one bucket. Default 32 MiB. */
  maxRoomBytes?: number;
}

/** The default caps; the `comet` command's flags start from these. */
export const DEFAULT_BACKLOG: Readonly<Required<BacklogLimits>> = Object.freeze({
  maxBytes: 256 * 1024 * 1024,
  maxRoomBytes: 32 * 1024 * 1024,
});

function _cap(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(v === Infinity || (Number.isSafeInteger(v) && v > 0))) {
    throw new RangeError(`${name} must be a positive integer of bytes or Infinity: ${v}`);
  }
  return v;
}

/**
 * Bytes waiting to be written to one hub's connections, and the caps that
 * keep them bounded when the whole server falls behind.
 *
 * Queues and rooms add and subtract as frames are queued and written, each
 * allocation once: a room's log counts each frame once however many members
 * will take it, a broadcast's frame counts once while any queue holds it, a
 * frame pushed to one connection counts in its queue. The
 * hub asks {@linkcode Backlog.admits} before it queues a push, so a push is
 * either refused whole, before anyone has it, or queued to every member.
 *
 * @example
 * ```ts
 * import { Backlog } from "./backlog.ts";
 *
 * const backlog = new Backlog({ maxBytes: 1024 });
 * console.log(backlog.admits(100, 4)); // true: 400 bytes
 * backlog.queueBytes += 400;
 * console.log(backlog.admits(100, 7)); // false: 1100 bytes
 * ```
 */
export class Backlog {
  /** Cap on {@linkcode Backlog.bytes}. */
  readonly maxBytes: number;
  /** Cap on one room log, within one bucket. */
  readonly maxRoomBytes: number;
  /** Bytes of frames in connections' own queues; kept by the channels. */
  queueBytes = 0;
  /** Bytes of frames in room logs; kept by the rooms. */
  roomBytes = 0;

  /**
   * Creates an empty backlog.
   *
   * @throws {RangeError} When a cap is not a positive integer or Infinity.
   */
  constructor(limits: BacklogLimits = {}) {
    this.maxBytes = _cap("Backlog cap", limits.maxBytes, DEFAULT_BACKLOG.maxBytes);
    this.maxRoomBytes = _cap("Room backlog cap", limits.maxRoomBytes, DEFAULT_BACKLOG.maxRoomBytes);
  }

  /** Bytes waiting, queues and room logs together. */
  get bytes(): number {
    return this.queueBytes + this.roomBytes;
  }

  /** Whether `copies` more references to a frame of `frameBytes` fit under {@linkcode Backlog.maxBytes}. */
  admits(frameBytes: number, copies: number): boolean {
    return this.queueBytes + this.roomBytes + frameBytes * copies <= this.maxBytes;
  }
}
