import { _int16, _int32 } from "../protocol/_int.ts";
import { type Frame, HEADER_SIZE } from "../protocol/frame.ts";
import { ProtocolError } from "../protocol/protocol_error.ts";

/**
 * Reads the whole frames laid back to back in `bytes` (one WebSocket message,
 * or the body of an op-9 batch) and calls `onFrame` with each. Bodies are
 * views into `bytes`, not copies.
 *
 * @param bytes Encoded frames with nothing between or after them.
 * @param onFrame Called once per frame, in order.
 * @returns How many frames there were.
 * @throws {ProtocolError} When a header is malformed or a frame is cut short;
 * the frames before it have been passed on.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "../protocol/frame.ts";
 * import { readFrames } from "./read_frames.ts";
 *
 * const a = encodeFrame(1000, 0, new TextEncoder().encode("a"));
 * const b = encodeFrame(1001, 0);
 * const batch = new Uint8Array([...a, ...b]);
 * readFrames(batch, (frame) => console.log(frame.op)); // 1000, then 1001
 * ```
 */
export function readFrames(bytes: Uint8Array, onFrame: (frame: Frame) => void): number {
  let at = 0;
  let count = 0;
  while (at < bytes.length) {
    const left = bytes.length - at;
    if (left < HEADER_SIZE) {
      throw new ProtocolError(`Frame is shorter than its header: ${left} bytes`);
    }
    const packLen = _int32(bytes, at);
    const headerLen = _int16(bytes, at + 4);
    if (headerLen !== HEADER_SIZE) {
      throw new ProtocolError(`Header length is not ${HEADER_SIZE}: ${headerLen}`);
    }
    if (packLen < HEADER_SIZE || packLen > left) {
      throw new ProtocolError(`Packet length does not fit the bytes left: ${packLen} of ${left}`);
    }
    onFrame({
      ver: _int16(bytes, at + 6),
      op: _int32(bytes, at + 8),
      seq: _int32(bytes, at + 12),
      body: bytes.subarray(at + HEADER_SIZE, at + packLen),
    });
    at += packLen;
    count++;
  }
  return count;
}
