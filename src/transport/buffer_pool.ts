/** Options for {@linkcode BufferPool}. */
export interface BufferPoolOptions {
  /** Buffers carved from one slab. Default 64. */
  perSlab?: number;
}

/** One shared allocation and the buffers of it not handed out. */
interface _Slab {
  free: Uint8Array[];
  /** Buffers of it handed out and not given back. */
  used: number;
}

/**
 * Fixed-size read buffers carved from shared slabs. Every idle connection
 * keeps one read pending, each with its own buffer; as a view into a slab,
 * such a buffer costs its bytes and one small view object, not an
 * `ArrayBuffer` with its own backing store (about 400 bytes more per
 * connection, measured with 512-byte buffers).
 *
 * A slab whose buffers have all come back is let go of, unless it is the
 * only one with room. A buffer must be given back only once nothing reads
 * into it or from it any more: the next taker overwrites it.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./buffer_pool.ts";
 *
 * const pool = new BufferPool(512);
 * const buf = pool.take();
 * console.log(buf.length); // 512
 * pool.give(buf);
 * ```
 */
export class BufferPool {
  /** Bytes per buffer. */
  readonly size: number;
  #perSlab: number;
  #slabs = new Map<ArrayBufferLike, _Slab>();
  /** Slabs with buffers to hand out; takes come from the last one. */
  #roomy: _Slab[] = [];

  /**
   * Creates an empty pool; slabs are allocated as buffers are taken.
   *
   * @param size Bytes per buffer, a positive integer.
   * @throws {RangeError} When `size` or `options.perSlab` is not a positive integer.
   */
  constructor(size: number, options: BufferPoolOptions = {}) {
    const perSlab = options.perSlab ?? 64;
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new RangeError(`Buffer size must be a positive integer: ${size}`);
    }
    if (!Number.isSafeInteger(perSlab) || perSlab < 1) {
      throw new RangeError(`Buffers per slab must be a positive integer: ${perSlab}`);
    }
    this.size = size;
    this.#perSlab = perSlab;
  }

  /** Buffers handed out and not given back. */
  get used(): number {
    let n = 0;
    for (const slab of this.#slabs.values()) n += slab.used;
    return n;
  }

  /** Slabs allocated and not let go of. */
  get slabs(): number {
    return this.#slabs.size;
  }

  /** Hands out a buffer of {@linkcode BufferPool.size} bytes; its contents are unspecified. */
  take(): Uint8Array {
    let slab = this.#roomy.at(-1);
    if (slab === undefined) slab = this.#allocate();
    const buf = slab.free.pop()!;
    slab.used++;
    if (slab.free.length === 0) this.#roomy.pop();
    return buf;
  }

  /**
   * Takes back a buffer {@linkcode BufferPool.take} handed out.
   *
   * @throws {TypeError} When `buf` did not come from this pool, or came back already.
   */
  give(buf: Uint8Array): void {
    const slab = this.#slabs.get(buf.buffer);
    if (slab === undefined || buf.length !== this.size || slab.free.includes(buf)) {
      throw new TypeError("Buffer is not one this pool handed out");
    }
    slab.free.push(buf);
    slab.used--;
    if (slab.free.length === 1) this.#roomy.push(slab);
    if (slab.used === 0 && this.#roomy.length > 1) {
      // Empty and not the only slab with room: its memory goes back.
      this.#roomy.splice(this.#roomy.indexOf(slab), 1);
      this.#slabs.delete(buf.buffer);
    }
  }

  #allocate(): _Slab {
    const size = this.size;
    const bytes = new Uint8Array(size * this.#perSlab);
    const free: Uint8Array[] = [];
    // Reversed, so buffers are handed out from the slab's start.
    for (let at = bytes.length - size; at >= 0; at -= size) {
      free.push(bytes.subarray(at, at + size));
    }
    const slab: _Slab = { free, used: 0 };
    this.#slabs.set(bytes.buffer, slab);
    this.#roomy.push(slab);
    return slab;
  }
}
