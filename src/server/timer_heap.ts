/** A deadline held by a {@linkcode TimerHeap}; one per owner, reused across resets. */
export interface Timer<T> {
  /** The owner handed to the expiry callback. */
  readonly value: T;
  /** Absolute deadline in milliseconds on the heap's clock. */
  readonly deadline: number;
  /** Position in the heap, or -1 when not scheduled. */
  readonly index: number;
}

/** Options for {@linkcode TimerHeap}. */
export interface TimerHeapOptions<T> {
  /** Called once for every timer whose deadline has passed; the timer is already removed. */
  onExpire: (value: T, timer: Timer<T>) => void;
  /** The clock, in milliseconds. Defaults to `performance.now`. */
  now?: () => number;
  /**
   * Called when `onExpire` throws; the other due timers still expire. Defaults
   * to rethrowing the error from a microtask, so it surfaces as uncaught.
   */
  onError?: (error: unknown, value: T) => void;
  /** Stops the heap (clears its one timeout) when aborted. */
  signal?: AbortSignal;
}

function _rethrow(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

interface _Entry<T> {
  value: T;
  deadline: number;
  index: number;
}

/**
 * One min-heap of deadlines for every connection, driven by a single
 * `setTimeout` armed for the earliest one. Add, reset and remove cost
 * O(log n); nothing is allocated per reset.
 *
 * The armed timeout is only moved earlier, never later: a heartbeat that
 * pushes a deadline out leaves it armed, and the early wake-up re-arms for the
 * new head. That keeps the common case (every client heartbeating) free of
 * `clearTimeout`/`setTimeout` churn.
 *
 * @example
 * ```ts
 * import { TimerHeap } from "./timer_heap.ts";
 *
 * using heap = new TimerHeap<string>({ onExpire: (id) => console.log(id, "expired") });
 * const timer = heap.add("conn-1", 5_000);
 * heap.reset(timer, 10_000); // a heartbeat arrived
 * heap.remove(timer); // the connection closed
 * ```
 */
export class TimerHeap<T> implements Disposable {
  #heap: _Entry<T>[] = [];
  #onExpire: (value: T, timer: Timer<T>) => void;
  #onError: (error: unknown, value: T) => void;
  #now: () => number;
  #timeout: ReturnType<typeof setTimeout> | undefined;
  #armedAt = Infinity;
  #closed = false;
  #fire = () => this.#onTimeout();

  /**
   * Creates an empty heap.
   *
   * @throws {TypeError} When `onExpire` is not a function.
   */
  constructor(options: TimerHeapOptions<T>) {
    if (typeof options.onExpire !== "function") {
      throw new TypeError("Timer heap needs an onExpire callback");
    }
    this.#onExpire = options.onExpire;
    this.#onError = options.onError ?? _rethrow;
    this.#now = options.now ?? (() => performance.now());
    if (options.signal?.aborted) this.close();
    else options.signal?.addEventListener("abort", () => this.close(), { once: true });
  }

  /** Number of scheduled timers. */
  get size(): number {
    return this.#heap.length;
  }

  /** The current time on the heap's clock. */
  now(): number {
    return this.#now();
  }

  /** The timer with the earliest deadline, if any. */
  peek(): Timer<T> | undefined {
    return this.#heap[0];
  }

  /**
   * Schedules `value` to expire `delay` milliseconds from now.
   *
   * @throws {RangeError} When `delay` is negative or not a number.
   */
  add(value: T, delay: number): Timer<T> {
    const entry: _Entry<T> = { value, deadline: 0, index: -1 };
    this.reset(entry, delay);
    return entry;
  }

  /**
   * Moves `timer` to expire `delay` milliseconds from now; schedules it again
   * if it had expired or was removed.
   *
   * @throws {RangeError} When `delay` is negative or not a number.
   */
  reset(timer: Timer<T>, delay: number): void {
    if (!(delay >= 0)) throw new RangeError(`Timer delay must be a non-negative number: ${delay}`);
    this.resetAt(timer, this.#now() + delay);
  }

  /**
   * Like {@linkcode TimerHeap.reset} with an absolute deadline on the heap's clock.
   *
   * @throws {RangeError} When `deadline` is NaN.
   */
  resetAt(timer: Timer<T>, deadline: number): void {
    if (Number.isNaN(deadline)) throw new RangeError("Timer deadline must be a number: NaN");
    const entry = timer as _Entry<T>;
    const old = entry.deadline;
    entry.deadline = deadline;
    if (entry.index < 0) {
      entry.index = this.#heap.length;
      this.#heap.push(entry);
      this.#up(entry.index);
    } else if (deadline < old) {
      this.#up(entry.index);
    } else {
      this.#down(entry.index);
    }
    if (entry.index === 0) this.#arm();
  }

  /** Unschedules `timer`; a no-op when it is not scheduled. */
  remove(timer: Timer<T>): void {
    const entry = timer as _Entry<T>;
    const i = entry.index;
    if (i < 0) return;
    entry.index = -1;
    const last = this.#heap.pop()!;
    if (last !== entry) {
      this.#heap[i] = last;
      last.index = i;
      this.#down(i);
      this.#up(last.index);
    }
    if (this.#heap.length === 0) this.#disarm();
  }

  /**
   * Expires every timer due at `now`, in deadline order, and returns how many
   * expired. The single timeout calls this; tests may call it with their own clock.
   */
  expire(now: number = this.#now()): number {
    let count = 0;
    // Re-read the heap every round: a callback may close the heap, which swaps it.
    for (let entry = this.#heap[0]; entry && entry.deadline <= now; entry = this.#heap[0]) {
      this.remove(entry);
      count++;
      try {
        this.#onExpire(entry.value, entry);
      } catch (err) {
        // One owner's failure must not stop the others from expiring.
        this.#onError(err, entry.value);
      }
    }
    return count;
  }

  /** Clears the timeout and every timer. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#heap) entry.index = -1;
    this.#heap = [];
    this.#disarm();
  }

  /** Same as {@linkcode TimerHeap.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #onTimeout(): void {
    this.#timeout = undefined;
    this.#armedAt = Infinity;
    this.expire();
    this.#arm();
  }

  #arm(): void {
    if (this.#closed) return;
    const head = this.#heap[0];
    if (!head) return this.#disarm();
    if (this.#timeout !== undefined && this.#armedAt <= head.deadline) return;
    if (this.#timeout !== undefined) clearTimeout(this.#timeout);
    this.#armedAt = head.deadline;
    // Deno clamps to 1 ms granularity; +1 avoids waking a hair before the deadline.
    const delay = Math.max(0, Math.ceil(head.deadline - this.#now()) + 1);
    this.#timeout = setTimeout(this.#fire, Math.min(delay, 0x7fffffff));
  }

  #disarm(): void {
    if (this.#timeout !== undefined) clearTimeout(this.#timeout);
    this.#timeout = undefined;
    this.#armedAt = Infinity;
  }

  #up(i: number): void {
    const heap = this.#heap;
    const entry = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (p.deadline <= entry.deadline) break;
      heap[i] = p;
      p.index = i;
      i = parent;
    }
    heap[i] = entry;
    entry.index = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const entry = heap[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && heap[right]!.deadline < heap[child]!.deadline) child = right;
      const c = heap[child]!;
      if (c.deadline >= entry.deadline) break;
      heap[i] = c;
      c.index = i;
      i = child;
    }
    heap[i] = entry;
    entry.index = i;
  }
}
