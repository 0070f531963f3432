/**
 * The RFC 6455 frame vocabulary (opcodes, close codes, the protocol error)
 * and the frame encoders. The parser is in `websocket_parser.ts`.
 *
 * @module
 */
import { ProtocolError } from "../protocol/protocol_error.ts";

/**
 * WebSocket frame opcodes (RFC 6455, section 5.2).
 *
 * @example
 * ```ts
 * import { WsOpcode } from "./websocket_codec.ts";
 * console.log(WsOpcode.Binary); // 2
 * ```
 */
export const WsOpcode = {
  Continuation: 0,
  Text: 1,
  Binary: 2,
  Close: 8,
  Ping: 9,
  Pong: 10,
} as const;

/** What {@linkcode WebSocketParser.next} hands out: a whole binary message or a control frame. */
export type WsEvent =
  | typeof WsOpcode.Binary
  | typeof WsOpcode.Close
  | typeof WsOpcode.Ping
  | typeof WsOpcode.Pong;

/**
 * Close status codes this codec uses (RFC 6455, section 7.4.1).
 *
 * @example
 * ```ts
 * import { WsCloseCode } from "./websocket_codec.ts";
 * console.log(WsCloseCode.ProtocolError); // 1002
 * ```
 */
export const WsCloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  NoStatus: 1005,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011,
} as const;

/**
 * A peer broke the WebSocket protocol; `code` is the close status to answer
 * with before dropping the connection.
 *
 * @example
 * ```ts
 * import { WebSocketError } from "./websocket_codec.ts";
 * const err = new WebSocketError(1002, "Client frame is not masked");
 * console.log(err.code); // 1002
 * ```
 */
export class WebSocketError extends ProtocolError {
  /** The close status code that describes the violation. */
  readonly code: number;

  /** Creates an error carrying close status `code`. */
  constructor(code: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WebSocketError";
    this.code = code;
  }
}

const EMPTY = new Uint8Array(0);
const _encoder = new TextEncoder();

/**
 * The most payload a control frame (close, ping, pong) may carry (RFC 6455,
 * section 5.5).
 *
 * @example
 * ```ts
 * import { MAX_CONTROL_PAYLOAD } from "./websocket_codec.ts";
 * console.log(MAX_CONTROL_PAYLOAD); // 125
 * ```
 */
export const MAX_CONTROL_PAYLOAD = 125;

/**
 * Whether a peer may put `code` in a close frame (RFC 6455, section 7.4):
 * 1005, 1006 and 1015 only describe a close, they never travel.
 *
 * @example
 * ```ts
 * import { isWireCloseCode } from "./websocket_codec.ts";
 * console.log(isWireCloseCode(1000), isWireCloseCode(1006), isWireCloseCode(4000)); // true false true
 * ```
 */
export function isWireCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/**
 * Bytes of the header of a frame with a `payloadLength`-byte payload: 2, 4 or
 * 10, plus 4 when masked.
 *
 * @example
 * ```ts
 * import { wsHeaderSize } from "./websocket_codec.ts";
 * console.log(wsHeaderSize(125), wsHeaderSize(126), wsHeaderSize(65_536)); // 2 4 10
 * ```
 */
export function wsHeaderSize(payloadLength: number, masked = false): number {
  const base = payloadLength < 126 ? 2 : payloadLength < 0x10000 ? 4 : 10;
  return masked ? base + 4 : base;
}

/**
 * Writes a frame header into `target` at `offset` and returns the offset
 * after it. The caller guarantees the space ({@linkcode wsHeaderSize} bytes)
 * and valid arguments; this is the hot path, so nothing is checked and
 * nothing allocated.
 *
 * @param target Where to write.
 * @param offset Where the header starts.
 * @param opcode A {@linkcode WsOpcode}.
 * @param payloadLength Bytes of payload that will follow.
 * @param fin Whether this is the last frame of its message.
 * @param mask A 4-byte masking key, for frames a client sends.
 *
 * @example
 * ```ts
 * import { writeWsHeader, WsOpcode } from "./websocket_codec.ts";
 * const out = new Uint8Array(2 + 3);
 * const at = writeWsHeader(out, 0, WsOpcode.Binary, 3);
 * out.set([1, 2, 3], at);
 * ```
 */
export function writeWsHeader(
  target: Uint8Array,
  offset: number,
  opcode: number,
  payloadLength: number,
  fin = true,
  mask?: Uint8Array,
): number {
  target[offset++] = (fin ? 0x80 : 0) | opcode;
  const maskBit = mask ? 0x80 : 0;
  if (payloadLength < 126) {
    target[offset++] = maskBit | payloadLength;
  } else if (payloadLength < 0x10000) {
    target[offset++] = maskBit | 126;
    target[offset++] = payloadLength >>> 8;
    target[offset++] = payloadLength & 0xff;
  } else {
    target[offset++] = maskBit | 127;
    const hi = Math.floor(payloadLength / 0x100000000);
    target[offset++] = hi >>> 24;
    target[offset++] = (hi >>> 16) & 0xff;
    target[offset++] = (hi >>> 8) & 0xff;
    target[offset++] = hi & 0xff;
    target[offset++] = payloadLength >>> 24;
    target[offset++] = (payloadLength >>> 16) & 0xff;
    target[offset++] = (payloadLength >>> 8) & 0xff;
    target[offset++] = payloadLength & 0xff;
  }
  if (mask) {
    target.set(mask, offset);
    offset += 4;
  }
  return offset;
}

/** Options for {@linkcode encodeWsFrame}. */
export interface EncodeWsFrameOptions {
  /** Whether this is the last frame of its message. Default `true`. */
  fin?: boolean;
  /** A 4-byte masking key; clients must mask, servers must not. */
  mask?: Uint8Array;
}

/**
 * Encodes one frame into a new buffer: unmasked as a server sends it, or
 * masked with `options.mask` as a client does.
 *
 * @throws {RangeError} When the opcode is not 0–15, a control frame is
 * fragmented or carries more than 125 bytes, or the mask is not 4 bytes.
 *
 * @example
 * ```ts
 * import { encodeWsFrame, WsOpcode } from "./websocket_codec.ts";
 * const frame = encodeWsFrame(WsOpcode.Binary, new Uint8Array([1, 2, 3]));
 * console.log(frame); // Uint8Array(5) [ 130, 3, 1, 2, 3 ]
 * ```
 */
export function encodeWsFrame(
  opcode: number,
  payload: Uint8Array = EMPTY,
  options: EncodeWsFrameOptions = {},
): Uint8Array {
  const fin = options.fin ?? true;
  const mask = options.mask;
  if (!Number.isInteger(opcode) || opcode < 0 || opcode > 15) {
    throw new RangeError(`Opcode must be an integer from 0 to 15: ${opcode}`);
  }
  if (opcode >= 8 && (!fin || payload.length > MAX_CONTROL_PAYLOAD)) {
    throw new RangeError(
      `Control frame must be final and carry at most ${MAX_CONTROL_PAYLOAD} bytes: ${payload.length}`,
    );
  }
  if (mask !== undefined && mask.length !== 4) {
    throw new RangeError(`Mask must be 4 bytes: ${mask.length}`);
  }
  const out = new Uint8Array(wsHeaderSize(payload.length, mask !== undefined) + payload.length);
  const at = writeWsHeader(out, 0, opcode, payload.length, fin, mask);
  if (mask === undefined) {
    out.set(payload, at);
  } else {
    for (let i = 0; i < payload.length; i++) out[at + i] = payload[i]! ^ mask[i & 3]!;
  }
  return out;
}

/**
 * Encodes `payload` as one unmasked binary message.
 *
 * @example
 * ```ts
 * import { encodeBinaryMessage } from "./websocket_codec.ts";
 * console.log(encodeBinaryMessage(new Uint8Array([7]))); // Uint8Array(3) [ 130, 1, 7 ]
 * ```
 */
export function encodeBinaryMessage(payload: Uint8Array): Uint8Array {
  return encodeWsFrame(WsOpcode.Binary, payload);
}

/**
 * Encodes the pong that answers a ping with `payload`.
 *
 * @throws {RangeError} When `payload` is longer than 125 bytes.
 *
 * @example
 * ```ts
 * import { encodePong } from "./websocket_codec.ts";
 * console.log(encodePong(new Uint8Array([1]))); // Uint8Array(3) [ 138, 1, 1 ]
 * ```
 */
export function encodePong(payload: Uint8Array = EMPTY): Uint8Array {
  return encodeWsFrame(WsOpcode.Pong, payload);
}

/**
 * Encodes a close frame. Without `code` the frame is empty (the peer sees
 * 1005). A reason longer than its 123 bytes of room is cut at a character
 * boundary, so error messages can be passed as they are.
 *
 * @throws {RangeError} When `code` is not one an endpoint may send.
 *
 * @example
 * ```ts
 * import { encodeClose } from "./websocket_codec.ts";
 * console.log(encodeClose(1000)); // Uint8Array(4) [ 136, 2, 3, 232 ]
 * ```
 */
export function encodeClose(code?: number, reason = ""): Uint8Array {
  if (code === undefined) return encodeWsFrame(WsOpcode.Close);
  if (!Number.isInteger(code) || !isWireCloseCode(code)) {
    throw new RangeError(`Close code is not one an endpoint may send: ${code}`);
  }
  let text = _encoder.encode(reason);
  if (text.length > MAX_CONTROL_PAYLOAD - 2) {
    let end = MAX_CONTROL_PAYLOAD - 2;
    while (end > 0 && (text[end]! & 0xc0) === 0x80) end--;
    text = text.subarray(0, end);
  }
  const payload = new Uint8Array(2 + text.length);
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  payload.set(text, 2);
  return encodeWsFrame(WsOpcode.Close, payload);
}
