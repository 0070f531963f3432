/**
 * The bytes of the last batch a transport encoded, kept so that the next
 * connection whose writer drains the very same frames gets the same bytes
 * without a copy. In a round of room pushes most members have the same
 * frames queued (those pushed since the last round), so one encode serves a
 * whole run of them, as a plain server would write one pre-joined buffer to
 * all. Frames are compared by reference: the hub encodes a push once and
 * shares it, and nobody mutates a frame or the encoded bytes afterwards.
 *
 * @example
 * ```ts
 * import { BatchCache } from "./batch_cache.ts";
 *
 * const cache = new BatchCache();
 * const a = new Uint8Array([1]), b = new Uint8Array([2]);
 * cache.set([a, b], 2, new Uint8Array([1, 2]));
 * console.log(cache.get([a, b], 2)); // Uint8Array(2) [ 1, 2 ]
 * console.log(cache.get([b, a], 2)); // undefined
 * ```
 */
export class BatchCache {
  #chunks: Uint8Array[] = [];
  #count = 0;
  #out: Uint8Array | undefined;

  /** The bytes encoded last, if `chunks[0..count)` are the same frames in the same order. */
  get(chunks: readonly Uint8Array[], count: number): Uint8Array | undefined {
    if (count !== this.#count || this.#out === undefined) return undefined;
    const last = this.#chunks;
    for (let i = 0; i < count; i++) if (chunks[i] !== last[i]) return undefined;
    return this.#out;
  }

  /** Remembers `out` as the encoding of `chunks[0..count)`. */
  set(chunks: readonly Uint8Array[], count: number, out: Uint8Array): void {
    const last = this.#chunks;
    for (let i = 0; i < count; i++) last[i] = chunks[i]!;
    // Drop references past the new end so old frames can be collected.
    if (last.length > count) last.length = count;
    this.#count = count;
    this.#out = out;
  }
}
