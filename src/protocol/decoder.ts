import { _int16, _int32 } from "./_int.ts";
import { DEFAULT_MAX_BODY, type Frame, HEADER_SIZE } from "./frame.ts";
import { ProtocolError } from "./protocol_error.ts";
import { StreamBuffer } from "./stream_buffer.ts";

/** Options for {@linkcode FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Largest body accepted, in bytes. Defaults to goim's 4096. */
  maxBody?: number;
}

const EMPTY = new Uint8Array(0);

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
  #buf = new StreamBuffer(HEADER_SIZE);
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
    return this.#buf.buffered;
  }

  /** Adds bytes read from the peer; ignored once the decoder has failed. */
  push(chunk: Uint8Array): void {
    // A failed decoder only throws: holding more bytes would just grow memory.
    if (this.#error) return;
    this.#buf.push(chunk);
  }

  /**
   * Returns the next whole frame, or `undefined` when more bytes are needed.
   *
   * @throws {ProtocolError} When the stream breaks the protocol; the decoder
   * then stays failed and throws the same error again.
   */
  next(): Frame | undefined {
    if (this.#error) throw this.#error;
    const buf = this.#buf;
    if (buf.pendingLen > 0) return this.#nextFromPending();
    const chunk = buf.chunk;
    const pos = buf.pos;
    const avail = chunk.length - pos;
    if (avail < HEADER_SIZE) {
      buf.hold();
      return undefined;
    }
    const packLen = this.#check(chunk, pos);
    if (avail < packLen) {
      buf.stash();
      return undefined;
    }
    buf.pos = pos + packLen;
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
    this.#buf.clear();
    return this.#error;
  }

  #nextFromPending(): Frame | undefined {
    const buf = this.#buf;
    if (buf.pendingLen < HEADER_SIZE) {
      buf.fill(HEADER_SIZE);
      if (buf.pendingLen < HEADER_SIZE) return undefined;
    }
    const packLen = this.#check(buf.pending!, 0);
    const p = buf.take(packLen);
    if (p === undefined) return undefined;
    return {
      ver: _int16(p, 6),
      op: _int32(p, 8),
      seq: _int32(p, 12),
      body: packLen === HEADER_SIZE ? EMPTY : p.subarray(HEADER_SIZE, packLen),
    };
  }
}
