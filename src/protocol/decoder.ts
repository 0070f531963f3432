import { DEFAULT_MAX_BODY, type Frame, HEADER_SIZE } from "./frame.ts";
import { ProtocolError } from "./protocol_error.ts";

/** Options for {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest body accepted, in bytes. Defaults to goim's 4096. */
  maxBody?: number;
}

const EMPTY = new Uint8Array(0);

function _int32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) | 0;
}

function _int16(b: Uint8Array, i: number): number {
  return (((b[i]! << 8) | b[i + 1]!) << 16) >> 16;
}

/**
 * A streaming goim frame decoder. Feed it byte chunks exactly as a socket
 * returns them (a frame split across reads, many frames in one read) and take
 * whole frames out with {@linkcode FrameDecoder.next}.
 *
 * The decoder borrows the chunk given to `push` until `next` returns
 * `undefined`; at that point it has copied any partial frame it still needs, so
 * the caller may reuse its read buffer. Frame bodies are always copies.
 *
 * @example
 * ```ts
 * import { FrameDecoder } from "./decoder.ts";
 * import { encodeFrame } from "./frame.ts";
 *
 * const decoder = new FrameDecoder();
 * const bytes = encodeFrame(2, 1);
 * decoder.push(bytes.subarray(0, 5));
 * console.log(decoder.next()); // undefined: only part of a frame so far
 * decoder.push(bytes.subarray(5));
 * console.log(decoder.next()?.op); // 2
 * ```
 */
export class FrameDecoder {
  #maxPack: number;
  #chunk: Uint8Array = EMPTY;
  #pos = 0;
  #pending: Uint8Array | undefined;
  #pendingLen = 0;
  #error: ProtocolError | undefined;

  /**
   * Creates a decoder with an empty buffer.
   *
   * @throws {RangeError} When `maxBody` is not a non-negative integer.
   */
  constructor(options: FrameDecoderOptions = {}) {
    const maxBody = options.maxBody ?? DEFAULT_MAX_BODY;
    if (!Number.isSafeInteger(maxBody) || maxBody < 0 || maxBody > 0x7fffffff - HEADER_SIZE) {
      throw new RangeError(`Max body must be a non-negative integer: ${maxBody}`);
    }
    this.#maxPack = HEADER_SIZE + maxBody;
  }

  /** Bytes held for a frame not yet complete. */
  get buffered(): number {
    return this.#pendingLen + this.#chunk.length - this.#pos;
  }

  /** Adds bytes read from the peer; ignored once the decoder has failed. */
  push(chunk: Uint8Array): void {
    // A failed decoder only throws: holding more bytes would just grow memory.
    if (this.#error) return;
    // A caller that pushes before draining must not lose the older bytes.
    if (this.#pos < this.#chunk.length) this.#stash();
    this.#chunk = chunk;
    this.#pos = 0;
  }

  /**
   * Returns the next whole frame, or `undefined` when more bytes are needed.
   *
   * @throws {ProtocolError} When the stream breaks the protocol; the decoder
   * then stays failed and throws the same error again.
   */
  next(): Frame | undefined {
    if (this.#error) throw this.#error;
    if (this.#pendingLen > 0) return this.#nextFromPending();
    const chunk = this.#chunk;
    const pos = this.#pos;
    const avail = chunk.length - pos;
    if (avail < HEADER_SIZE) {
      if (avail > 0) this.#stash();
      else this.#release();
      return undefined;
    }
    const packLen = this.#check(chunk, pos);
    if (avail < packLen) {
      this.#stash();
      return undefined;
    }
    this.#pos = pos + packLen;
    return {
      ver: _int16(chunk, pos + 6),
      op: _int32(chunk, pos + 8),
      seq: _int32(chunk, pos + 12),
      body: packLen === HEADER_SIZE ? EMPTY : chunk.slice(pos + HEADER_SIZE, pos + packLen),
    };
  }

  /**
   * Pushes `chunk` and yields every frame that is complete with it.
   *
   * @throws {ProtocolError} When the stream breaks the protocol.
   */
  *decode(chunk: Uint8Array): Generator<Frame, void, undefined> {
    this.push(chunk);
    for (let frame = this.next(); frame; frame = this.next()) yield frame;
  }

  #check(bytes: Uint8Array, at: number): number {
    const packLen = _int32(bytes, at);
    const headerLen = _int16(bytes, at + 4);
    if (headerLen !== HEADER_SIZE) {
      throw this.#fail(`Header length is not ${HEADER_SIZE}: ${headerLen}`);
    }
    if (packLen < HEADER_SIZE) throw this.#fail(`Packet length is below the header: ${packLen}`);
    if (packLen > this.#maxPack) {
      throw this.#fail(
        `Body exceeds the limit of ${this.#maxPack - HEADER_SIZE} bytes: ${packLen - HEADER_SIZE}`,
      );
    }
    return packLen;
  }

  #fail(message: string): ProtocolError {
    this.#error = new ProtocolError(message);
    this.#release();
    this.#pending = undefined;
    this.#pendingLen = 0;
    return this.#error;
  }

  #nextFromPending(): Frame | undefined {
    if (this.#pendingLen < HEADER_SIZE) {
      this.#fill(HEADER_SIZE);
      if (this.#pendingLen < HEADER_SIZE) return undefined;
    }
    const packLen = this.#check(this.#pending!, 0);
    this.#fill(packLen);
    if (this.#pendingLen < packLen) return undefined;
    const p = this.#pending!;
    const extra = this.#pendingLen - packLen;
    if (extra > 0) {
      // Only when the caller pushed again without draining: keep the surplus.
      this.#pending = p.slice(packLen, this.#pendingLen);
      this.#pendingLen = extra;
    } else {
      this.#pending = undefined;
      this.#pendingLen = 0;
    }
    return {
      ver: _int16(p, 6),
      op: _int32(p, 8),
      seq: _int32(p, 12),
      body: packLen === HEADER_SIZE ? EMPTY : p.subarray(HEADER_SIZE, packLen),
    };
  }

  /** Copies borrowed bytes into the pending buffer until it holds `want`. */
  #fill(want: number): void {
    const need = want - this.#pendingLen;
    if (need <= 0) return;
    let p = this.#pending!;
    if (p.length < want) {
      const grown = new Uint8Array(want);
      grown.set(p.subarray(0, this.#pendingLen));
      this.#pending = p = grown;
    }
    const take = Math.min(need, this.#chunk.length - this.#pos);
    if (take > 0) {
      p.set(this.#chunk.subarray(this.#pos, this.#pos + take), this.#pendingLen);
      this.#pendingLen += take;
      this.#pos += take;
    }
    if (this.#pos >= this.#chunk.length) this.#release();
  }

  /** Moves the unread tail of the borrowed chunk into owned memory. */
  #stash(): void {
    const tail = this.#chunk.subarray(this.#pos);
    if (this.#pendingLen === 0) {
      // Room for the header now; the buffer grows to the frame's size once known.
      this.#pending = new Uint8Array(Math.max(HEADER_SIZE, tail.length));
    } else if (this.#pending!.length < this.#pendingLen + tail.length) {
      const grown = new Uint8Array(this.#pendingLen + tail.length);
      grown.set(this.#pending!.subarray(0, this.#pendingLen));
      this.#pending = grown;
    }
    this.#pending!.set(tail, this.#pendingLen);
    this.#pendingLen += tail.length;
    this.#release();
  }

  #release(): void {
    this.#chunk = EMPTY;
    this.#pos = 0;
  }
}
