/** Slots of a ring when it is first allocated; a power of two. */
const _FIRST_SIZE = 4;

/**
 * Thrown by {@linkcode BoundedQueue.push} when the queue holds its capacity.
 *
 * @example
 * ```ts
 * import { BoundedQueue, QueueFullError } from "./queue.ts";
 * const queue = new BoundedQueue<number>(1);
 * queue.push(1);
 * try {
 *   queue.push(2);
 * } catch (err) {
 *   console.log(err instanceof QueueFullError); // true
 * }
 * ```
 */
export class QueueFullError extends Error {
  /** Creates the error for a queue of `capacity` items. */
  constructor(capacity: number) {
    super(`Queue is full: ${capacity} items`);
    this.name = "QueueFullError";
  }
}

/**
 * A bounded FIFO between one producer side that must never block (the hub
 * pushing into a connection) and one consumer task (the connection's writer).
 *
 * Storage is a ring allocated on the first item that starts small and doubles
 * as needed, and that {@linkcode BoundedQueue.release} lets go of while empty,
 * so an idle connection pays for no slots, not for its worst case. Waking the
 * consumer costs one promise per wake-up, not one per item.
 *
 * @example
 * ```ts
 * import { BoundedQueue } from "./queue.ts";
 *
 * const queue = new BoundedQueue<string>(64);
 * queue.offer("a");
 * queue.offer("b");
 * await queue.wait();
 * while (queue.length > 0) console.log(queue.shift());
 * ```
 */
export class BoundedQueue<T> {
  #capacity: number;
  /** Allocated on the first item: an idle connection's queue may never hold one. */
  #ring: (T | undefined)[] | undefined;
  #head = 0;
  #length = 0;
  #closed = false;
  #wake: (() => void) | undefined;

  /**
   * Creates an empty queue.
   *
   * @param capacity Items held at most before `offer` refuses.
   * @throws {RangeError} When `capacity` is not a positive integer.
   */
  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`Queue capacity must be a positive integer: ${capacity}`);
    }
    this.#capacity = capacity;
  }

  /** Items queued. */
  get length(): number {
    return this.#length;
  }

  /** Items held at most. */
  get capacity(): number {
    return this.#capacity;
  }

  /** True once {@linkcode BoundedQueue.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Adds `item` unless the queue is full or closed. Never blocks.
   *
   * @returns Whether the item was queued.
   */
  offer(item: T): boolean {
    if (this.#closed || this.#length >= this.#capacity) return false;
    this.#append(item);
    return true;
  }

  /**
   * Adds `item`; throws instead of returning false.
   *
   * @throws {QueueFullError} When the queue holds its capacity.
   * @throws {TypeError} When the queue is closed.
   */
  push(item: T): void {
    if (this.#closed) throw new TypeError("Queue is closed");
    if (!this.offer(item)) throw new QueueFullError(this.#capacity);
  }

  /**
   * Adds `item` even past the capacity (by one slot per call). Used for the
   * last word to a peer, such as a disconnect notice, after the queue filled.
   *
   * @returns False only when the queue is closed.
   */
  force(item: T): boolean {
    if (this.#closed) return false;
    this.#append(item);
    return true;
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const ring = this.#ring!;
    const item = ring[this.#head];
    ring[this.#head] = undefined;
    this.#head = (this.#head + 1) & (ring.length - 1);
    this.#length--;
    return item;
  }

  /** Drops every queued item and returns how many there were. */
  clear(): number {
    const n = this.#length;
    this.#ring?.fill(undefined);
    this.#head = 0;
    this.#length = 0;
    return n;
  }

  /**
   * Lets go of the storage while the queue is empty; the next item allocates
   * it anew. With `keepGrown`, storage that has grown past its first size is
   * kept: a connection busy enough to need it will, and regrowing it from
   * four slots on every drain costs more than holding it.
   *
   * @returns Whether the queue holds no storage now.
   */
  release(keepGrown = false): boolean {
    const ring = this.#ring;
    if (ring === undefined) return true;
    if (this.#length > 0 || (keepGrown && ring.length > _FIRST_SIZE)) return false;
    this.#ring = undefined;
    this.#head = 0;
    return true;
  }

  /**
   * Resolves when an item is queued or the queue is closed. There is one
   * consumer: a second `wait()` before the first resolves replaces it.
   */
  wait(): Promise<void> {
    if (this.#length > 0 || this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
  }

  /** Refuses further items and wakes the consumer; queued items stay readable. */
  close(): void {
    this.#closed = true;
    this.#signal();
  }

  #append(item: T): void {
    let ring = this.#ring;
    // Sizes are powers of two, so positions wrap with a mask.
    if (ring === undefined) this.#ring = ring = new Array(_FIRST_SIZE);
    else if (this.#length === ring.length) {
      // Unroll the ring into one twice as large.
      const mask = ring.length - 1;
      const grown = new Array<T | undefined>(ring.length * 2);
      for (let i = 0; i < this.#length; i++) grown[i] = ring[(this.#head + i) & mask];
      this.#ring = ring = grown;
      this.#head = 0;
    }
    ring[(this.#head + this.#length) & (ring.length - 1)] = item;
    this.#length++;
    if (this.#length === 1) this.#signal();
  }

  #signal(): void {
    const wake = this.#wake;
    if (wake) {
      this.#wake = undefined;
      wake();
    }
  }
}
