import type { SharedFrame } from "./frame_queue.ts";

/** Frames held at most per frame of a connection's queue size. */
const _HOLD_FACTOR = 8;

/**
 * The pushes a connection holds while the positions of its streams are
 * asked (an answer that comes later: another worker, Redis): they go out
 * after the answer's op 8 or op 13, but those the answer's replay covers.
 * Held for one answer at most, so bounded: past `queueSize` times eight
 * frames the connection counts as slow.
 *
 * @example
 * ```ts
 * import { HeldPushes } from "./held_pushes.ts";
 *
 * const held = new HeldPushes(4);
 * held.add(new Uint8Array(16), "alone");
 * console.log(held.frames.length); // 1
 * ```
 */
export class HeldPushes {
  /** The frames, oldest first. */
  readonly frames: Uint8Array[] = [];
  /** Each frame's kind, as it would have been queued: to it alone, or shared. */
  readonly kinds: ("alone" | SharedFrame)[] = [];
  #cap: number;

  /** Holds at most eight times `queueSize` frames. */
  constructor(queueSize: number) {
    this.#cap = _HOLD_FACTOR * queueSize;
  }

  /** Holds `frame`; false when the hold is full (the caller applies the slow policy). */
  add(frame: Uint8Array, kind: "alone" | SharedFrame): boolean {
    if (this.frames.length >= this.#cap) return false;
    this.frames.push(frame);
    this.kinds.push(kind);
    return true;
  }
}
