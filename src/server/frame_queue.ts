/** Slots of a ring when it is first allocated; a power of two. */
const _FIRST_SIZE = 4;

/**
 * The frames queued to one connection, first in first out, each marked as
 * pushed to it alone (a push to its key or user) or not (a reply, a
 * broadcast's shared frame, room frames caught up). Only frames pushed to it
 * alone count towards its queue limit: frames that wait only because the
 * server has not reached the connection yet must never make it slow.
 *
 * Unbounded by itself; the channel applies the limit. Storage is a ring made
 * on the first frame, doubled as needed, and let go of by
 * {@linkcode FrameQueue.release} while empty, so an idle connection holds none.
 *
 * @example
 * ```ts
 * import { FrameQueue } from "./frame_queue.ts";
 *
 * const queue = new FrameQueue();
 * queue.push(new Uint8Array(16), true);
 * queue.push(new Uint8Array(20), false);
 * console.log(queue.length, queue.alone, queue.bytes); // 2 1 36
 * queue.shift();
 * console.log(queue.alone); // 0
 * ```
 */
export class FrameQueue {
  #ring: (Uint8Array | undefined)[] | undefined;
  /** 1 where the frame in the same slot of `#ring` was pushed to this connection alone. */
  #alone: Uint8Array | undefined;
  #head = 0;
  #length = 0;
  #aloneCount = 0;
  #bytes = 0;

  /** Frames queued. */
  get length(): number {
    return this.#length;
  }

  /** Frames queued that were pushed to this connection alone. */
  get alone(): number {
    return this.#aloneCount;
  }

  /** Bytes of the frames queued. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Length of the oldest frame; 0 when empty. */
  get nextLength(): number {
    return this.#length === 0 ? 0 : this.#ring![this.#head]!.length;
  }

  /** Appends `frame`; `alone`: it was pushed to this connection alone. */
  push(frame: Uint8Array, alone: boolean): void {
    let ring = this.#ring;
    if (ring === undefined) {
      this.#ring = ring = new Array(_FIRST_SIZE);
      this.#alone = new Uint8Array(_FIRST_SIZE);
    } else if (this.#length === ring.length) {
      ring = this.#grow(ring);
    }
    const at = (this.#head + this.#length) & (ring.length - 1);
    ring[at] = frame;
    this.#alone![at] = alone ? 1 : 0;
    if (alone) this.#aloneCount++;
    this.#bytes += frame.length;
    this.#length++;
  }

  /** Removes and returns the oldest frame. */
  shift(): Uint8Array | undefined {
    if (this.#length === 0) return undefined;
    const ring = this.#ring!;
    const head = this.#head;
    const frame = ring[head]!;
    ring[head] = undefined;
    if (this.#alone![head] === 1) this.#aloneCount--;
    this.#head = (head + 1) & (ring.length - 1);
    this.#length--;
    this.#bytes -= frame.length;
    return frame;
  }

  /** Drops the newest frames past the first `length`; returns how many. */
  truncate(length: number): number {
    const ring = this.#ring;
    if (ring === undefined || this.#length <= length) return 0;
    const cut = this.#length - length;
    const mask = ring.length - 1;
    for (let i = length; i < this.#length; i++) {
      const at = (this.#head + i) & mask;
      this.#bytes -= ring[at]!.length;
      if (this.#alone![at] === 1) this.#aloneCount--;
      ring[at] = undefined;
    }
    this.#length = length;
    return cut;
  }

  /** Drops every frame; returns their bytes. */
  clear(): number {
    const bytes = this.#bytes;
    this.#ring?.fill(undefined);
    this.#head =
      this.#length =
      this.#aloneCount =
      this.#bytes =
        0;
    return bytes;
  }

  /**
   * Lets go of the storage while empty; the next frame allocates it anew.
   * With `keepGrown`, a ring grown past its first size is kept: a connection
   * busy enough to need it will again, and regrowing from four slots on every
   * drain costs more than holding it.
   *
   * @returns Whether the queue holds no storage now.
   */
  release(keepGrown = false): boolean {
    const ring = this.#ring;
    if (ring === undefined) return true;
    if (this.#length > 0 || (keepGrown && ring.length > _FIRST_SIZE)) return false;
    this.#ring = this.#alone = undefined;
    this.#head = 0;
    return true;
  }

  /** Unrolls the full ring into one twice as large. */
  #grow(ring: (Uint8Array | undefined)[]): (Uint8Array | undefined)[] {
    const mask = ring.length - 1;
    const flags = this.#alone!;
    const grown = new Array<Uint8Array | undefined>(ring.length * 2);
    const grownFlags = new Uint8Array(ring.length * 2);
    for (let i = 0; i < this.#length; i++) {
      const from = (this.#head + i) & mask;
      grown[i] = ring[from];
      grownFlags[i] = flags[from]!;
    }
    this.#ring = grown;
    this.#alone = grownFlags;
    this.#head = 0;
    return grown;
  }
}
