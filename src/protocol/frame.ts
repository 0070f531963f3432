import { _int32, _putInt32 } from "./_int.ts";
import { ProtocolError } from "./protocol_error.ts";

/** Size of the fixed goim frame header in bytes. */
export const HEADER_SIZE = 16;

/** goim's default cap on an inbound body (`MaxBodySize = 1 << 12`). */
export const DEFAULT_MAX_BODY = 4096;

/** Protocol version clients send; replies echo the version they got. */
export const PROTOCOL_VERSION = 1;

/**
 * One goim frame, decoded.
 *
 * @example
 * ```ts
 * import { encodeFrame, type Frame } from "./frame.ts";
 *
 * const frame: Frame = { ver: 1, op: 2, seq: 1, body: new Uint8Array(0) };
 * console.log(encodeFrame(frame.op, frame.seq, frame.body, frame.ver).length); // 16
 * ```
 */
export interface Frame {
  /** Protocol version (clients send 1). */
  ver: number;
  /** Operation code, see {@linkcode Op}. */
  op: number;
  /** Client sequence number, echoed by replies. */
  seq: number;
  /** The body; empty for most control operations. */
  body: Uint8Array;
}

const EMPTY = new Uint8Array(0);

function _checkInt32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) {
    throw new RangeError(`${name} must be a 32-bit integer: ${value}`);
  }
}

/**
 * Writes a frame header into `target` at `offset` and returns the offset
 * after it; the `packLen - HEADER_SIZE` body bytes are the caller's to write.
 *
 * Byte stores rather than a DataView: asking a small array for its `buffer`
 * would move its bytes off the V8 heap, a backing store per frame (replies
 * are small).
 *
 * @example
 * ```ts
 * import { HEADER_SIZE, writeHeader } from "./frame.ts";
 * const out = new Uint8Array(HEADER_SIZE);
 * writeHeader(out, 0, HEADER_SIZE, 2, 7);
 * console.log(out[11], out[15]); // 2 7
 * ```
 */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  packLen: number,
  op: number,
  seq: number,
  ver: number = PROTOCOL_VERSION,
): number {
  _putInt32(target, offset, packLen);
  target[offset + 4] = HEADER_SIZE >> 8;
  target[offset + 5] = HEADER_SIZE & 0xff;
  target[offset + 6] = (ver >> 8) & 0xff;
  target[offset + 7] = ver & 0xff;
  _putInt32(target, offset + 8, op);
  _putInt32(target, offset + 12, seq);
  return offset + HEADER_SIZE;
}

/**
 * Writes one frame into `target` at `offset` and returns the offset after it.
 * The caller guarantees the space (`HEADER_SIZE + body.length` bytes).
 *
 * @example
 * ```ts
 * import { writeFrame, HEADER_SIZE } from "./frame.ts";
 * const out = new Uint8Array(HEADER_SIZE + 2);
 * writeFrame(out, 0, 1000, 0, new Uint8Array([1, 2]));
 * ```
 */
export function writeFrame(
  target: Uint8Array,
  offset: number,
  op: number,
  seq: number,
  body: Uint8Array,
  ver: number = PROTOCOL_VERSION,
): number {
  const at = writeHeader(target, offset, HEADER_SIZE + body.length, op, seq, ver);
  if (body.length > 0) target.set(body, at);
  return at + body.length;
}

/**
 * Encodes one frame into a new buffer. A push encodes its frame once and shares
 * the bytes with every receiver.
 *
 * @param op Operation code.
 * @param seq Sequence number (0 for pushes, the request's for replies).
 * @param body Body bytes.
 * @param ver Protocol version to write.
 * @returns The encoded frame: 16-byte header and body.
 * @throws {RangeError} When `op`, `seq` or `ver` do not fit their fields.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./frame.ts";
 * const bytes = encodeFrame(1000, 0, new TextEncoder().encode("hi"));
 * console.log(bytes.length); // 18
 * ```
 */
export function encodeFrame(
  op: number,
  seq: number,
  body: Uint8Array = EMPTY,
  ver: number = PROTOCOL_VERSION,
): Uint8Array {
  _checkInt32("Operation", op);
  _checkInt32("Sequence", seq);
  if (!Number.isInteger(ver) || ver < -0x8000 || ver > 0x7fff) {
    throw new RangeError(`Version must be a 16-bit integer: ${ver}`);
  }
  if (HEADER_SIZE + body.length > 0x7fffffff) {
    throw new RangeError(`Body is too large for one frame: ${body.length} bytes`);
  }
  const out = new Uint8Array(HEADER_SIZE + body.length);
  writeFrame(out, 0, op, seq, body, ver);
  return out;
}

/**
 * The op of an encoded frame, read from its header; the caller guarantees a
 * whole header. For the hot path, where {@linkcode peekFrame}'s checks and
 * result object would cost more than the read.
 *
 * @example
 * ```ts
 * import { encodeFrame, frameOp } from "./frame.ts";
 * console.log(frameOp(encodeFrame(1000, 0))); // 1000
 * ```
 */
export function frameOp(frame: Uint8Array): number {
  return _int32(frame, 8);
}

/**
 * Reads the header of the encoded frame at `offset` of `bytes` without copying
 * its body. Used by transports that re-frame already encoded frames.
 *
 * @throws {ProtocolError} When the bytes do not hold a whole, well-formed frame.
 * @throws {RangeError} When `offset` is negative or not an integer.
 *
 * @example
 * ```ts
 * import { encodeFrame, peekFrame } from "./frame.ts";
 * const { op } = peekFrame(encodeFrame(1000, 0), 0);
 * console.log(op); // 1000
 * ```
 */
export function peekFrame(
  bytes: Uint8Array,
  offset: number,
): { packLen: number; ver: number; op: number; seq: number } {
  if (!Number.isInteger(offset) || offset < 0) {
    throw new RangeError(`Offset must be a non-negative integer: ${offset}`);
  }
  if (bytes.length - offset < HEADER_SIZE) {
    throw new ProtocolError(`Frame is shorter than its header: ${bytes.length - offset} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, HEADER_SIZE);
  const packLen = view.getInt32(0);
  if (
    view.getInt16(4) !== HEADER_SIZE || packLen < HEADER_SIZE || packLen > bytes.length - offset
  ) {
    throw new ProtocolError(`Frame header is malformed: packLen ${packLen}`);
  }
  return { packLen, ver: view.getInt16(6), op: view.getInt32(8), seq: view.getInt32(12) };
}
