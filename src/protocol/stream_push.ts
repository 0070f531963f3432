/**
 * The op-18 frame: a push to a stream, with the stream's kind, epoch and the
 * push's offset ahead of the pushed bytes (docs/protocol.md, section 8.4).
 * Only clients that opted in with `recover` receive it.
 *
 * @module
 */

import { _int32, _putInt32 } from "./_int.ts";
import { HEADER_SIZE, PROTOCOL_VERSION, writeHeader } from "./frame.ts";
import { Op } from "./op.ts";
import { ProtocolError } from "./protocol_error.ts";

/**
 * The kinds of stream a connection reads, as op 18 names them.
 *
 * @example
 * ```ts
 * import { StreamKind } from "./stream_push.ts";
 * console.log(StreamKind.Room, StreamKind.Mid, StreamKind.All); // 1 2 3
 * ```
 */
export const StreamKind = { Room: 1, Mid: 2, All: 3 } as const;

/**
 * One of {@linkcode StreamKind}'s codes.
 *
 * @example
 * ```ts
 * import { StreamKind, type StreamKindCode } from "./stream_push.ts";
 * const kind: StreamKindCode = StreamKind.Mid;
 * console.log(kind); // 2
 * ```
 */
export type StreamKindCode = typeof StreamKind[keyof typeof StreamKind];

/**
 * Bytes op 18 puts ahead of the pushed bytes: kind (1), epoch (4), offset (8), op (4).
 *
 * @example
 * ```ts
 * import { STREAM_PUSH_PREFIX } from "./stream_push.ts";
 * console.log(STREAM_PUSH_PREFIX); // 17
 * ```
 */
export const STREAM_PUSH_PREFIX = 17;

/**
 * The largest offset: offsets travel as 64-bit unsigned numbers but are read
 * into JavaScript numbers.
 *
 * @example
 * ```ts
 * import { MAX_OFFSET } from "./stream_push.ts";
 * console.log(MAX_OFFSET === Number.MAX_SAFE_INTEGER); // true
 * ```
 */
export const MAX_OFFSET = Number.MAX_SAFE_INTEGER;

/**
 * A decoded op-18 body.
 *
 * @example
 * ```ts
 * import { decodeStreamPush, encodeStreamPush, StreamKind, type StreamPush } from "./stream_push.ts";
 * const frame = encodeStreamPush(StreamKind.Room, 7, 1, 1000, new Uint8Array([104, 105]));
 * const push: StreamPush = decodeStreamPush(frame.subarray(16));
 * console.log(push.offset, push.op); // 1 1000
 * ```
 */
export interface StreamPush {
  /** Which of the connection's streams: room, mid or all. */
  kind: StreamKindCode;
  /** The stream's epoch, 1 to 2^32 − 1. */
  epoch: number;
  /** The push's offset in its stream, from 1. */
  offset: number;
  /** The push's business op. */
  op: number;
  /** The pushed bytes: a view into the frame body given. */
  body: Uint8Array;
}

/**
 * Encodes a whole op-18 frame (header included), ready to queue: one per push
 * and stream, shared by every opted-in reader of that stream.
 *
 * @throws {RangeError} When the kind, epoch, offset or op do not fit their fields.
 *
 * @example
 * ```ts
 * import { encodeStreamPush, StreamKind } from "./stream_push.ts";
 * const frame = encodeStreamPush(StreamKind.All, 1, 42, 1000, new TextEncoder().encode("hi"));
 * console.log(frame.length); // 35: 16 header + 17 + 2
 * ```
 */
export function encodeStreamPush(
  kind: StreamKindCode,
  epoch: number,
  offset: number,
  op: number,
  body: Uint8Array,
): Uint8Array {
  if (kind !== 1 && kind !== 2 && kind !== 3) {
    throw new RangeError(`Stream kind must be 1, 2 or 3: ${kind}`);
  }
  if (!Number.isInteger(epoch) || epoch < 1 || epoch > 0xffffffff) {
    throw new RangeError(`Stream epoch must be an integer from 1 to 2^32 - 1: ${epoch}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 1) {
    throw new RangeError(`Stream offset must be a positive safe integer: ${offset}`);
  }
  if (!Number.isInteger(op) || op < -0x80000000 || op > 0x7fffffff) {
    throw new RangeError(`Operation must be a 32-bit integer: ${op}`);
  }
  const size = HEADER_SIZE + STREAM_PUSH_PREFIX + body.length;
  const out = new Uint8Array(size);
  // Byte stores, as frame.ts writes the header: no DataView, and `out` stays on the V8 heap.
  const at = writeHeader(out, 0, size, Op.StreamPush, 0, PROTOCOL_VERSION);
  out[at] = kind;
  _putInt32(out, at + 1, epoch);
  // Two 32-bit halves: a 64-bit store would take a BigInt, which allocates.
  _putInt32(out, at + 5, Math.floor(offset / 0x100000000));
  _putInt32(out, at + 9, offset);
  _putInt32(out, at + 13, op);
  out.set(body, at + STREAM_PUSH_PREFIX);
  return out;
}

/**
 * Reads an op-18 body.
 *
 * @throws {ProtocolError} When the body is shorter than its prefix, or a field is out of range.
 *
 * @example
 * ```ts
 * import { decodeStreamPush, encodeStreamPush, StreamKind } from "./stream_push.ts";
 * const frame = encodeStreamPush(StreamKind.Mid, 9, 3, 1001, new Uint8Array());
 * console.log(decodeStreamPush(frame.subarray(16)).kind); // 2
 * ```
 */
export function decodeStreamPush(body: Uint8Array): StreamPush {
  if (body.length < STREAM_PUSH_PREFIX) {
    throw new ProtocolError(`Stream push is shorter than its prefix: ${body.length} bytes`);
  }
  const view = new DataView(body.buffer, body.byteOffset, STREAM_PUSH_PREFIX);
  const kind = view.getUint8(0);
  if (kind !== 1 && kind !== 2 && kind !== 3) {
    throw new ProtocolError(`Stream push has an unknown kind: ${kind}`);
  }
  const high = view.getUint32(5);
  if (high > 0x1fffff) throw new ProtocolError("Stream push offset is past 2^53 - 1");
  return {
    kind,
    epoch: view.getUint32(1),
    offset: high * 0x100000000 + view.getUint32(9),
    op: view.getInt32(13),
    body: body.subarray(STREAM_PUSH_PREFIX),
  };
}

/**
 * The offset of an encoded op-18 frame (header included), read without
 * decoding the rest: for a hub that drops what a replay already covered.
 *
 * @example
 * ```ts
 * import { encodeStreamPush, streamPushOffset, StreamKind } from "./stream_push.ts";
 * console.log(streamPushOffset(encodeStreamPush(StreamKind.Room, 1, 5, 1000, new Uint8Array()))); // 5
 * ```
 */
export function streamPushOffset(frame: Uint8Array): number {
  // Bytes, not a DataView: a hub reads this once per opted-in receiver of a push.
  return _uint32(frame, HEADER_SIZE + 5) * 0x100000000 + _uint32(frame, HEADER_SIZE + 9);
}

/**
 * The epoch of an encoded op-18 frame (header included), read without
 * decoding the rest.
 *
 * @example
 * ```ts
 * import { encodeStreamPush, streamPushEpoch, StreamKind } from "./stream_push.ts";
 * console.log(streamPushEpoch(encodeStreamPush(StreamKind.Room, 9, 5, 1000, new Uint8Array()))); // 9
 * ```
 */
export function streamPushEpoch(frame: Uint8Array): number {
  return _uint32(frame, HEADER_SIZE + 1);
}

/** The big-endian unsigned 32-bit number at `at`. */
function _uint32(bytes: Uint8Array, at: number): number {
  return _int32(bytes, at) >>> 0;
}
