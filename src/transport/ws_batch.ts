import { _int16, _int32 } from "../protocol/_int.ts";
import { type Frame, frameOp, HEADER_SIZE, writeHeader } from "../protocol/frame.ts";
import { isReplyOp, Op } from "../protocol/op.ts";
import { WebSocketError, WsCloseCode } from "./websocket_codec.ts";

/**
 * Writes the header of one WebSocket message of `payloadLength` bytes into
 * `target` at `offset` and returns the offset after it; and says how long
 * that header is. A transport whose messages have no byte header (a
 * `WebSocket` object) passes {@linkcode NO_MESSAGE_HEADER}.
 */
export interface MessageHeader {
  /** Bytes of the header for a message of `payloadLength` bytes. */
  size(payloadLength: number): number;
  /** Writes the header; returns the offset after it. */
  write(target: Uint8Array, offset: number, payloadLength: number): number;
}

/** For transports that frame messages themselves: no header bytes. */
export const NO_MESSAGE_HEADER: MessageHeader = {
  size: () => 0,
  write: (_target, offset) => offset,
};

/**
 * Whether an encoded frame is a reply to the client (ops 1, 3, 5, 6, 8, 13,
 * 15, 17). goim writes those as messages of their own and clients switch on
 * a message's outer op, so a reply must never hide inside an op-9 batch:
 * goim's `examples/javascript/client.js` starts heartbeating on a top-level
 * op 8.
 */
export function isReplyFrame(frame: Uint8Array): boolean {
  return isReplyOp(frameOp(frame));
}

/**
 * Lays out a writer's flush the way goim's WebSocket clients read it, in one
 * buffer: each reply as a message of its own; each run of pushes as one
 * message, holding the push itself when the run is one frame long, else one
 * op-9 (Raw) frame whose body is the run's frames back to back.
 *
 * @param chunks Encoded goim frames; `chunks[0..count)` are used.
 * @param count How many frames.
 * @param header How a message is framed on the wire.
 * @param reserve Bytes left free at the end, for the caller to fill.
 * @returns The messages, each behind its header, back to back.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "../protocol/frame.ts";
 * import { encodeGoimMessages, NO_MESSAGE_HEADER } from "./ws_batch.ts";
 *
 * const pushes = [encodeFrame(1000, 0), encodeFrame(1000, 0)];
 * const out = encodeGoimMessages(pushes, 2, NO_MESSAGE_HEADER);
 * console.log(out.length); // 48: one op-9 frame holding two 16-byte frames
 * ```
 */
export function encodeGoimMessages(
  chunks: readonly Uint8Array[],
  count: number,
  header: MessageHeader,
  reserve = 0,
): Uint8Array {
  let total = reserve;
  for (let i = 0; i < count;) {
    const end = _runEnd(chunks, count, i);
    let payload = end - i > 1 ? HEADER_SIZE : 0;
    for (let j = i; j < end; j++) payload += chunks[j]!.length;
    total += header.size(payload) + payload;
    i = end;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < count;) {
    const end = _runEnd(chunks, count, i);
    const batched = end - i > 1;
    let payload = batched ? HEADER_SIZE : 0;
    for (let j = i; j < end; j++) payload += chunks[j]!.length;
    at = header.write(out, at, payload);
    if (batched) at = writeHeader(out, at, payload, Op.Raw, 0);
    for (let j = i; j < end; j++) {
      out.set(chunks[j]!, at);
      at += chunks[j]!.length;
    }
    i = end;
  }
  return out;
}

/** End (exclusive) of the message starting at `i`: one reply, or a run of pushes. */
function _runEnd(chunks: readonly Uint8Array[], count: number, i: number): number {
  if (isReplyFrame(chunks[i]!)) return i + 1;
  let end = i + 1;
  while (end < count && !isReplyFrame(chunks[end]!)) end++;
  return end;
}

const _EMPTY = new Uint8Array(0);

/**
 * The goim frame an inbound binary WebSocket message holds: goim's clients
 * send exactly one per message. The body is a view of `message`, not a copy.
 *
 * @throws {WebSocketError} With code 1002 (protocol error) when the message
 * is not exactly one goim frame with a 16-byte header.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "../protocol/frame.ts";
 * import { decodeGoimMessage } from "./ws_batch.ts";
 * console.log(decodeGoimMessage(encodeFrame(4, 9)).seq); // 9
 * ```
 */
export function decodeGoimMessage(message: Uint8Array): Frame {
  const n = message.length;
  const packLen = n >= HEADER_SIZE ? _int32(message, 0) : -1;
  const headerLen = n >= HEADER_SIZE ? _int16(message, 4) : -1;
  if (packLen !== n || headerLen !== HEADER_SIZE) {
    throw new WebSocketError(
      WsCloseCode.ProtocolError,
      `Message is not one goim frame: packLen ${packLen}, headerLen ${headerLen} in ${n} bytes`,
    );
  }
  return {
    ver: _int16(message, 6),
    op: _int32(message, 8),
    seq: _int32(message, 12),
    body: n === HEADER_SIZE ? _EMPTY : message.subarray(HEADER_SIZE),
  };
}
