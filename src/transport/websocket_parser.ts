/**
 * The RFC 6455 frame parser: bytes as a socket returns them in, whole
 * messages and control frames out. The frame vocabulary and the encoders
 * are in `websocket_codec.ts`.
 *
 * @module
 */
import {
  isWireCloseCode,
  MAX_CONTROL_PAYLOAD,
  WebSocketError,
  WsCloseCode,
  type WsEvent,
  WsOpcode,
} from "./websocket_codec.ts";

/** Options for {@linkcode WebSocketParser}. */
export interface WebSocketParserOptions {
  /** Largest message (all fragments together) in bytes; above it, close 1009. Default 64 KiB. */
  maxMessage?: number;
  /**
   * Whether frames must be masked: `true` (default) parses a client's frames
   * as a server must; `false` parses a server's frames, which must not be.
   */
  masked?: boolean;
}

const EMPTY = new Uint8Array(0);
const _MAX_HEAD = 14;

// Scratch shared by every parser: a parser fills and reads them within one
// synchronous call. A header split across chunks is kept in the parser's own
// `#held`, allocated only when that happens.
const _head = new Uint8Array(_MAX_HEAD);
const _mask = new Uint8Array(4);
const _utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A streaming parser for WebSocket frames. Feed it byte chunks exactly as a
 * socket returns them and take messages out with
 * {@linkcode WebSocketParser.next}: fragments are reassembled, control frames
 * are handed out as they come, even between the fragments of a message.
 * Text messages are refused (goim speaks binary only).
 *
 * The parser borrows the chunk given to `push` until `next` returns
 * `undefined`; by then it has copied (and unmasked) everything it still needs,
 * so the caller may reuse its read buffer.
 *
 * @example
 * ```ts
 * import { encodeWsFrame, WsOpcode } from "./websocket_codec.ts";
 * import { WebSocketParser } from "./websocket_parser.ts";
 *
 * const parser = new WebSocketParser();
 * const mask = new Uint8Array([1, 2, 3, 4]);
 * parser.push(encodeWsFrame(WsOpcode.Binary, new Uint8Array([42]), { mask }));
 * console.log(parser.next() === WsOpcode.Binary, parser.payload); // true Uint8Array(1) [ 42 ]
 * ```
 */
export class WebSocketParser {
  #maxMessage: number;
  #masked: boolean;
  #chunk: Uint8Array = EMPTY;
  #pos = 0;
  #error: WebSocketError | undefined;
  // The header of the frame being read, collected across chunks.
  #held: Uint8Array | undefined;
  #headLen = 0;
  // The frame whose payload is being read.
  #inFrame = false;
  #opcode = 0;
  #fin = false;
  #remaining = 0;
  #mask = 0;
  #maskAt = 0;
  #dest: Uint8Array = EMPTY;
  #destAt = 0;
  // A fragmented message being reassembled.
  #fragmented = false;
  #message: Uint8Array | undefined;
  #messageLen = 0;
  #payload: Uint8Array = EMPTY;
  #closeCode: number = WsCloseCode.NoStatus;
  #closeReason = "";

  /**
   * Creates a parser with nothing buffered.
   *
   * @throws {RangeError} When `maxMessage` is not a non-negative safe integer.
   */
  constructor(options: WebSocketParserOptions = {}) {
    const maxMessage = options.maxMessage ?? 65_536;
    if (!Number.isSafeInteger(maxMessage) || maxMessage < 0) {
      throw new RangeError(`Max message must be a non-negative integer: ${maxMessage}`);
    }
    this.#maxMessage = maxMessage;
    this.#masked = options.masked ?? true;
  }

  /**
   * The payload of what `next` last returned: the whole binary message (the
   * caller's to keep), or a control frame's payload (valid until the next
   * call to `next`).
   */
  get payload(): Uint8Array {
    return this.#payload;
  }

  /** Status code of the last close frame; 1005 when it carried none. */
  get closeCode(): number {
    return this.#closeCode;
  }

  /** Reason of the last close frame; empty when it carried none. */
  get closeReason(): string {
    return this.#closeReason;
  }

  /** Adds bytes read from the peer; ignored once the parser has failed. */
  push(chunk: Uint8Array): void {
    if (this.#error) return;
    const left = this.#chunk.length - this.#pos;
    if (left > 0) {
      // Only when the caller pushes before draining: both chunks are needed, in order.
      const merged = new Uint8Array(left + chunk.length);
      merged.set(this.#chunk.subarray(this.#pos));
      merged.set(chunk, left);
      chunk = merged;
    }
    this.#chunk = chunk;
    this.#pos = 0;
  }

  /**
   * Parses on until a whole binary message or a control frame is in; its
   * bytes are then in {@linkcode WebSocketParser.payload}.
   *
   * @returns The opcode of what arrived, or `undefined` when more bytes are needed.
   * @throws {WebSocketError} When the peer breaks the protocol; the parser
   * then stays failed and throws the same error again.
   */
  next(): WsEvent | undefined {
    if (this.#error) throw this.#error;
    // The last payload is the caller's now; an idle parser holds no message.
    this.#payload = EMPTY;
    for (;;) {
      if (!this.#inFrame && !this.#readHead()) return this.#starve();
      if (this.#remaining > 0) {
        this.#copyPayload();
        if (this.#remaining > 0) return this.#starve();
      }
      this.#inFrame = false;
      const event = this.#finishFrame();
      if (event !== undefined) return event;
    }
  }

  #starve(): undefined {
    this.#chunk = EMPTY;
    this.#pos = 0;
    return undefined;
  }

  #fail(code: number, message: string): WebSocketError {
    this.#error = new WebSocketError(code, message);
    this.#chunk = EMPTY;
    this.#pos = 0;
    this.#message = undefined;
    this.#dest = EMPTY;
    return this.#error;
  }

  /**
   * Collects header bytes until `_head` holds `want`; when the chunk runs out
   * first, keeps what it has in `#held` for the next chunk.
   */
  #take(want: number): boolean {
    const take = Math.min(want - this.#headLen, this.#chunk.length - this.#pos);
    if (take > 0) {
      _head.set(this.#chunk.subarray(this.#pos, this.#pos + take), this.#headLen);
      this.#headLen += take;
      this.#pos += take;
    }
    if (this.#headLen >= want) return true;
    // Nothing of a header yet (an idle connection): nothing to keep.
    if (this.#headLen > 0) {
      (this.#held ??= new Uint8Array(_MAX_HEAD)).set(_head.subarray(0, this.#headLen));
    }
    return false;
  }

  #readHead(): boolean {
    // Header bytes from earlier chunks go back into the shared scratch first.
    if (this.#headLen > 0) _head.set(this.#held!.subarray(0, this.#headLen));
    if (!this.#take(2)) return false;
    const h = _head;
    const b0 = h[0]!;
    const b1 = h[1]!;
    // Checked on the first two bytes so a bad peer fails before it sends more.
    this.#check(b0, b1);
    const len7 = b1 & 0x7f;
    const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const maskAt = 2 + ext;
    if (!this.#take(maskAt + (b1 & 0x80 ? 4 : 0))) return false;
    let length = len7;
    if (ext === 2) {
      length = (h[2]! << 8) | h[3]!;
    } else if (ext === 8) {
      const hi = ((h[2]! << 24) | (h[3]! << 16) | (h[4]! << 8) | h[5]!) >>> 0;
      if (hi >= 0x80000000) {
        throw this.#fail(
          WsCloseCode.ProtocolError,
          "Payload length has its most significant bit set",
        );
      }
      length = hi * 0x100000000 + (((h[6]! << 24) | (h[7]! << 16) | (h[8]! << 8) | h[9]!) >>> 0);
    }
    const opcode = b0 & 0x0f;
    if (opcode < 8) {
      const total = (this.#fragmented ? this.#messageLen : 0) + length;
      if (total > this.#maxMessage) {
        throw this.#fail(
          WsCloseCode.MessageTooBig,
          `Message exceeds the limit of ${this.#maxMessage} bytes: ${total}`,
        );
      }
    }
    if (b1 & 0x80) {
      this.#mask = ((h[maskAt]! << 24) | (h[maskAt + 1]! << 16) | (h[maskAt + 2]! << 8) |
        h[maskAt + 3]!) >>> 0;
    }
    this.#headLen = 0;
    this.#held = undefined;
    this.#inFrame = true;
    this.#opcode = opcode;
    this.#fin = (b0 & 0x80) !== 0;
    this.#remaining = length;
    this.#maskAt = 0;
    this.#setDest(opcode, length);
    return true;
  }

  /** Validates the first two header bytes against the state of the stream. */
  #check(b0: number, b1: number): void {
    const P = WsCloseCode.ProtocolError;
    if (b0 & 0x70) throw this.#fail(P, `Reserved bits are set: 0x${(b0 & 0x70).toString(16)}`);
    const masked = (b1 & 0x80) !== 0;
    if (masked !== this.#masked) {
      throw this.#fail(P, this.#masked ? "Client frame is not masked" : "Server frame is masked");
    }
    const opcode = b0 & 0x0f;
    if (opcode >= 8) {
      if (opcode > WsOpcode.Pong) throw this.#fail(P, `Reserved control opcode: ${opcode}`);
      if (!(b0 & 0x80)) throw this.#fail(P, `Control frame is fragmented: opcode ${opcode}`);
      if ((b1 & 0x7f) > MAX_CONTROL_PAYLOAD) {
        throw this.#fail(P, `Control frame payload is longer than ${MAX_CONTROL_PAYLOAD} bytes`);
      }
    } else if (opcode > WsOpcode.Binary) {
      throw this.#fail(P, `Reserved data opcode: ${opcode}`);
    } else if (opcode === WsOpcode.Continuation) {
      if (!this.#fragmented) {
        throw this.#fail(P, "Continuation frame without a message to continue");
      }
    } else if (this.#fragmented) {
      throw this.#fail(P, `Data frame inside a fragmented message: opcode ${opcode}`);
    } else if (opcode === WsOpcode.Text) {
      throw this.#fail(WsCloseCode.UnsupportedData, "Text messages are not supported");
    }
  }

  #setDest(opcode: number, length: number): void {
    if (opcode >= 8) {
      // Control frames are rare; a buffer of their own spares every parser a 125-byte one.
      this.#dest = length === 0 ? EMPTY : new Uint8Array(length);
      this.#destAt = 0;
    } else if (this.#fin && !this.#fragmented) {
      // The common case, a message in one frame: its own buffer, exactly sized.
      this.#dest = length === 0 ? EMPTY : new Uint8Array(length);
      this.#destAt = 0;
    } else {
      const need = this.#messageLen + length;
      let buf = this.#message;
      if (buf === undefined || buf.length < need) {
        // Doubling keeps a peer that sends many tiny fragments from costing quadratic copies.
        const grown = new Uint8Array(
          Math.max(need, Math.min(this.#maxMessage, (buf?.length ?? 0) * 2)),
        );
        if (buf !== undefined) grown.set(buf.subarray(0, this.#messageLen));
        this.#message = buf = grown;
      }
      this.#dest = buf;
      this.#destAt = this.#messageLen;
    }
  }

  #copyPayload(): void {
    const chunk = this.#chunk;
    const pos = this.#pos;
    const take = Math.min(this.#remaining, chunk.length - pos);
    if (take <= 0) return;
    const dest = this.#dest;
    const at = this.#destAt;
    if (this.#masked) {
      const w = this.#mask;
      const m = _mask;
      m[0] = w >>> 24;
      m[1] = w >>> 16;
      m[2] = w >>> 8;
      m[3] = w;
      const k = this.#maskAt;
      for (let i = 0; i < take; i++) dest[at + i] = chunk[pos + i]! ^ m[(k + i) & 3]!;
      this.#maskAt = (k + take) & 3;
    } else {
      dest.set(chunk.subarray(pos, pos + take), at);
    }
    this.#pos = pos + take;
    this.#destAt = at + take;
    this.#remaining -= take;
  }

  /** Acts on a fully read frame; returns an event, or `undefined` to read on. */
  #finishFrame(): WsEvent | undefined {
    const opcode = this.#opcode;
    if (opcode >= 8) {
      const payload = this.#dest.subarray(0, this.#destAt);
      this.#payload = payload;
      if (opcode === WsOpcode.Close) this.#parseClose(payload);
      return opcode as WsEvent;
    }
    if (!this.#fin) {
      this.#fragmented = true;
      this.#messageLen = this.#destAt;
      return undefined;
    }
    if (this.#fragmented) {
      this.#payload = this.#message!.subarray(0, this.#destAt);
      this.#message = undefined;
      this.#messageLen = 0;
      this.#fragmented = false;
    } else {
      this.#payload = this.#dest;
    }
    this.#dest = EMPTY;
    return WsOpcode.Binary;
  }

  #parseClose(payload: Uint8Array): void {
    if (payload.length === 0) {
      this.#closeCode = WsCloseCode.NoStatus;
      this.#closeReason = "";
      return;
    }
    if (payload.length === 1) {
      throw this.#fail(WsCloseCode.ProtocolError, "Close frame payload is a single byte");
    }
    const code = (payload[0]! << 8) | payload[1]!;
    if (!isWireCloseCode(code)) {
      throw this.#fail(WsCloseCode.ProtocolError, `Close code is not valid: ${code}`);
    }
    try {
      this.#closeReason = _utf8.decode(payload.subarray(2));
    } catch {
      throw this.#fail(WsCloseCode.InvalidPayload, "Close reason is not valid UTF-8");
    }
    this.#closeCode = code;
  }
}
