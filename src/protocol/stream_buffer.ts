/**
 * The streaming-buffer machinery shared by the length-prefixed decoders
 * (`FrameDecoder` in `decoder.ts`, `PkgDecoder` in `pkg.ts`).
 *
 * @module
 */

const EMPTY = new Uint8Array(0);

/** Returns `bytes` if it holds `want` bytes, else a larger copy of its first `used`. */
function _grow(bytes: Uint8Array, used: number, want: number): Uint8Array {
  if (bytes.length >= want) return bytes;
  const grown = new Uint8Array(want);
  grown.set(bytes.subarray(0, used));
  return grown;
}

/**
 * Internal: the byte buffer behind a streaming decoder. It borrows the chunk
 * given to {@linkcode StreamBuffer.push} (read at `chunk[pos]` onwards, with no
 * copy) and copies into an owned `pending` buffer only what a unit split
 * across chunks still needs.
 *
 * The fields are public so a decoder's hot path can read the borrowed chunk
 * directly: a decoder reads whole units from `chunk` while `pendingLen` is 0
 * and advances `pos` past them; otherwise it completes a unit in `pending`
 * with {@linkcode StreamBuffer.fill} and {@linkcode StreamBuffer.take}.
 */
export class StreamBuffer {
  /** The borrowed chunk; empty once released. */
  chunk: Uint8Array = EMPTY;
  /** Offset of the first unread byte of {@linkcode StreamBuffer.chunk}. */
  pos = 0;
  /** Owned bytes of a unit not yet complete; valid up to `pendingLen`. */
  pending: Uint8Array | undefined;
  /** Bytes of {@linkcode StreamBuffer.pending} in use. */
  pendingLen = 0;
  readonly #headerSize: number;

  /**
   * Creates an empty buffer.
   *
   * @param headerSize Bytes a unit's header takes: the least a new pending
   * buffer is sized for, so the header can be completed without growing it.
   */
  constructor(headerSize: number) {
    this.#headerSize = headerSize;
  }

  /** Bytes held, borrowed or owned, that no unit has consumed yet. */
  get buffered(): number {
    return this.pendingLen + this.chunk.length - this.pos;
  }

  /**
   * Borrows `chunk` as the bytes to read next. A caller that pushes before
   * draining must not lose the older bytes, so any unread tail is stashed
   * first.
   */
  push(chunk: Uint8Array): void {
    if (this.pos < this.chunk.length) this.stash();
    this.chunk = chunk;
    this.pos = 0;
  }

  /** Gives up the borrowed chunk, first stashing whatever of it is unread. */
  hold(): void {
    if (this.pos < this.chunk.length) this.stash();
    else this.release();
  }

  /** Moves the unread tail of the borrowed chunk into owned memory. */
  stash(): void {
    const tail = this.chunk.subarray(this.pos);
    if (this.pendingLen === 0) {
      // Room for the header now; the buffer grows to the unit's size once known.
      this.pending = new Uint8Array(Math.max(this.#headerSize, tail.length));
    } else {
      this.pending = _grow(this.pending!, this.pendingLen, this.pendingLen + tail.length);
    }
    this.pending.set(tail, this.pendingLen);
    this.pendingLen += tail.length;
    this.release();
  }

  /** Copies borrowed bytes into the pending buffer until it holds `want`. */
  fill(want: number): void {
    const need = want - this.pendingLen;
    if (need <= 0) return;
    const p = this.pending = _grow(this.pending!, this.pendingLen, want);
    const take = Math.min(need, this.chunk.length - this.pos);
    if (take > 0) {
      p.set(this.chunk.subarray(this.pos, this.pos + take), this.pendingLen);
      this.pendingLen += take;
      this.pos += take;
    }
    if (this.pos >= this.chunk.length) this.release();
  }

  /**
   * Completes a unit of `size` bytes in the pending buffer and hands it over.
   *
   * @returns A buffer holding the unit at `[0, size)`, now owned by the
   * caller, or `undefined` when more bytes are needed.
   */
  take(size: number): Uint8Array | undefined {
    this.fill(size);
    if (this.pendingLen < size) return undefined;
    const p = this.pending!;
    const extra = this.pendingLen - size;
    if (extra > 0) {
      // Only when the caller pushed again without draining: keep the surplus.
      this.pending = p.slice(size, this.pendingLen);
      this.pendingLen = extra;
    } else {
      this.pending = undefined;
      this.pendingLen = 0;
    }
    return p;
  }

  /** Drops the borrowed chunk without stashing it. */
  release(): void {
    this.chunk = EMPTY;
    this.pos = 0;
  }

  /** Drops every byte held, borrowed or owned. */
  clear(): void {
    this.release();
    this.pending = undefined;
    this.pendingLen = 0;
  }
}
