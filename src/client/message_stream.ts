const _DONE: IteratorReturnResult<undefined> = { value: undefined, done: true };

/**
 * An async iterator over items pushed into it, with a bounded buffer: when
 * the consumer lags and `capacity` items are waiting, each new item pushes
 * out the oldest one, which is counted in {@linkcode MessageStream.dropped}.
 * A producer never waits and memory stays bounded; a consumer that cannot
 * keep up loses the oldest messages, not the newest.
 *
 * {@linkcode Client.messages} hands these out; `push` and `end` belong to
 * the producer.
 *
 * @example
 * ```ts
 * import { MessageStream } from "./message_stream.ts";
 *
 * const stream = new MessageStream<string>(2);
 * stream.push("a");
 * stream.push("b");
 * stream.push("c"); // "a" is dropped
 * stream.end();
 * for await (const item of stream) console.log(item); // "b", then "c"
 * console.log(stream.dropped); // 1
 * ```
 */
export class MessageStream<T> implements AsyncIterableIterator<T> {
  #ring: (T | undefined)[] = [];
  #capacity: number;
  #head = 0;
  #length = 0;
  #dropped = 0;
  #ended = false;
  #waiters: ((result: IteratorResult<T, undefined>) => void)[] = [];
  #onReturn: (() => void) | undefined;

  /**
   * Creates an empty stream.
   *
   * @param capacity Items buffered at most before the oldest is dropped.
   * @param onReturn Called once when the consumer stops early (`break`, `return()`).
   * @throws {RangeError} When `capacity` is not a positive integer.
   */
  constructor(capacity: number, onReturn?: () => void) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(`Stream capacity must be a positive integer: ${capacity}`);
    }
    this.#capacity = capacity;
    this.#onReturn = onReturn;
  }

  /** Items dropped so far because the buffer was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Items waiting to be taken. */
  get size(): number {
    return this.#length;
  }

  /** True once {@linkcode MessageStream.end} or `return()` was called. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Hands `item` to a waiting consumer or buffers it.
   *
   * @returns `false` when the oldest buffered item was dropped to make room,
   * or the stream has ended and `item` was discarded; else `true`.
   */
  push(item: T): boolean {
    if (this.#ended) return false;
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter({ value: item, done: false });
      return true;
    }
    let ring = this.#ring;
    if (this.#length < this.#capacity) {
      if (this.#length === ring.length) ring = this.#grow();
      ring[(this.#head + this.#length) % ring.length] = item;
      this.#length++;
      return true;
    }
    ring[this.#head] = item;
    this.#head = (this.#head + 1) % ring.length;
    this.#dropped++;
    return false;
  }

  /** Doubles the ring, up to the capacity: it grows only as far as the backlog does. */
  #grow(): (T | undefined)[] {
    const old = this.#ring;
    const ring = new Array<T | undefined>(Math.min(this.#capacity, Math.max(8, old.length * 2)));
    for (let i = 0; i < this.#length; i++) ring[i] = old[(this.#head + i) % old.length];
    this.#head = 0;
    return this.#ring = ring;
  }

  /** Ends the stream: buffered items are still handed out, then iteration is done. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const waiter of this.#waiters.splice(0)) waiter(_DONE);
  }

  /** Resolves with the next item, or `done` once the stream has ended and drained. */
  next(): Promise<IteratorResult<T, undefined>> {
    if (this.#length > 0) {
      const ring = this.#ring;
      const value = ring[this.#head] as T;
      ring[this.#head] = undefined;
      this.#head = (this.#head + 1) % ring.length;
      this.#length--;
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended) return Promise.resolve(_DONE);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Stops the stream early and drops what is buffered. */
  return(): Promise<IteratorResult<T, undefined>> {
    this.end();
    this.#ring = [];
    this.#head = 0;
    this.#length = 0;
    const onReturn = this.#onReturn;
    this.#onReturn = undefined;
    onReturn?.();
    return Promise.resolve(_DONE);
  }

  /** The stream is its own iterator. */
  [Symbol.asyncIterator](): this {
    return this;
  }
}
