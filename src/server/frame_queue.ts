import type { Backlog } from "./backlog.ts";

/** Slots of a ring when it is first allocated; a power of two. */
const _FIRST_SIZE = 4;

/**
 * One broadcast's frame, queued to many connections: its bytes count once in
 * the hub's backlog while any queue holds it, as they are one allocation.
 *
 * @example
 * ```ts
 * import { Backlog } from "./backlog.ts";
 * import { FrameQueue, SharedFrame } from "./frame_queue.ts";
 *
 * const backlog = new Backlog();
 * const frame = new Uint8Array(1000);
 * const shared = new SharedFrame(frame.length);
 * const a = new FrameQueue(backlog);
 * const b = new FrameQueue(backlog);
 * a.push(frame, shared);
 * b.push(frame, shared);
 * console.log(backlog.queueBytes); // 1000
 * ```
 */
export class SharedFrame {
  /** The frame's length. */
  readonly bytes: number;
  /** Queues holding it. */
  refs = 0;

  /** Describes a frame of `bytes` about to be queued to many connections. */
  constructor(bytes: number) {
    this.bytes = bytes;
  }
}

/**
 * How a frame came to a connection's queue: pushed to it alone (its key, its
 * user: counts towards the queue limit), its own reply or goodbye (never
 * limited), a room frame caught up (the room's log counts its bytes), or a
 * broadcast's {@linkcode SharedFrame}.
 */
export type FrameKind = "alone" | "reply" | "room" | SharedFrame;

/**
 * The frames queued to one connection, first in first out, each with its
 * {@linkcode FrameKind}. Only frames pushed to it alone count towards its
 * queue limit: frames that wait only because the server has not reached the
 * connection yet must never make it slow. It keeps the hub's
 * {@linkcode Backlog.queueBytes} as frames come and go.
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
 * queue.push(new Uint8Array(16), "alone");
 * queue.push(new Uint8Array(20), "reply");
 * console.log(queue.length, queue.alone, queue.bytes); // 2 1 36
 * queue.shift();
 * console.log(queue.alone); // 0
 * ```
 */
export class FrameQueue {
  #ring: (Uint8Array | undefined)[] | undefined;
  #kinds: (FrameKind | undefined)[] | undefined;
  #head = 0;
  #length = 0;
  #alone = 0;
  #bytes = 0;
  #backlog: Backlog | undefined;

  /** Creates an empty queue whose frames count in `backlog`. */
  constructor(backlog?: Backlog) {
    this.#backlog = backlog;
  }

  /** Frames queued. */
  get length(): number {
    return this.#length;
  }

  /** Frames queued that were pushed to this connection alone. */
  get alone(): number {
    return this.#alone;
  }

  /** Bytes of the frames queued. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Length of the oldest frame; 0 when empty. */
  get nextLength(): number {
    return this.#length === 0 ? 0 : this.#ring![this.#head]!.length;
  }

  /** Appends `frame` of kind `kind`. */
  push(frame: Uint8Array, kind: FrameKind): void {
    let ring = this.#ring;
    if (ring === undefined) {
      this.#ring = ring = new Array(_FIRST_SIZE);
      this.#kinds = new Array(_FIRST_SIZE);
    } else if (this.#length === ring.length) {
      ring = this.#grow(ring);
    }
    const at = (this.#head + this.#length) & (ring.length - 1);
    ring[at] = frame;
    this.#kinds![at] = kind;
    if (kind === "alone") this.#alone++;
    this.#bytes += frame.length;
    this.#length++;
    const backlog = this.#backlog;
    if (backlog === undefined || kind === "room") return;
    if (typeof kind === "string") backlog.queueBytes += frame.length;
    else if (kind.refs++ === 0) backlog.queueBytes += kind.bytes;
  }

  /** Removes and returns the oldest frame. */
  shift(): Uint8Array | undefined {
    if (this.#length === 0) return undefined;
    const head = this.#head;
    const frame = this.#remove(head);
    this.#head = (head + 1) & (this.#ring!.length - 1);
    this.#length--;
    return frame;
  }

  /** Drops the newest frames past the first `length`; returns how many. */
  truncate(length: number): number {
    const ring = this.#ring;
    if (ring === undefined || this.#length <= length) return 0;
    const cut = this.#length - length;
    const mask = ring.length - 1;
    for (let i = length; i < this.#length; i++) this.#remove((this.#head + i) & mask);
    this.#length = length;
    return cut;
  }

  /** Drops every frame. */
  clear(): void {
    this.truncate(0);
    this.#head = 0;
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
    this.#ring = this.#kinds = undefined;
    this.#head = 0;
    return true;
  }

  /** Empties slot `at` and takes its frame off the counts; returns the frame. */
  #remove(at: number): Uint8Array {
    const ring = this.#ring!;
    const kinds = this.#kinds!;
    const frame = ring[at]!;
    const kind = kinds[at]!;
    ring[at] = kinds[at] = undefined;
    if (kind === "alone") this.#alone--;
    this.#bytes -= frame.length;
    const backlog = this.#backlog;
    if (backlog !== undefined && kind !== "room") {
      if (typeof kind === "string") backlog.queueBytes -= frame.length;
      else if (--kind.refs === 0) backlog.queueBytes -= kind.bytes;
    }
    return frame;
  }

  /** Unrolls the full ring into one twice as large. */
  #grow(ring: (Uint8Array | undefined)[]): (Uint8Array | undefined)[] {
    const mask = ring.length - 1;
    const kinds = this.#kinds!;
    const grown = new Array<Uint8Array | undefined>(ring.length * 2);
    const grownKinds = new Array<FrameKind | undefined>(ring.length * 2);
    for (let i = 0; i < this.#length; i++) {
      const from = (this.#head + i) & mask;
      grown[i] = ring[from];
      grownKinds[i] = kinds[from];
    }
    this.#ring = grown;
    this.#kinds = grownKinds;
    this.#head = 0;
    return grown;
  }
}
