/**
 * Where one opted-in connection stands in each of its streams, so that no
 * op-18 frame reaches it twice. A stream push can come again after the
 * connection's answer covered it: a Redis answer read ahead of the node's
 * pub/sub, or a node filling a gap with pushes a replay already sent. The
 * frame is dropped here, per connection, whatever path brought it.
 *
 * @module
 */

import { frameOp, HEADER_SIZE } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import {
  StreamKind,
  type StreamKindCode,
  streamPushEpoch,
  streamPushOffset,
} from "../protocol/stream_push.ts";
import type { StreamStamp } from "./streams.ts";

/**
 * The last epoch and offset taken per stream kind (room, mid, all); epoch 0:
 * none yet, take whatever comes.
 *
 * @example
 * ```ts
 * import { encodeStreamPush, StreamKind } from "../protocol/stream_push.ts";
 * import { StreamPositions } from "./stream_positions.ts";
 *
 * const at = new StreamPositions();
 * at.set(StreamKind.Room, { epoch: 7, offset: 2 });
 * const frame = (n: number) => encodeStreamPush(StreamKind.Room, 7, n, 1000, new Uint8Array());
 * console.log(at.admits(frame(2)), at.admits(frame(3)), at.admits(frame(3))); // false true false
 * ```
 */
export class StreamPositions {
  #epochs = [0, 0, 0, 0];
  #offsets = [0, 0, 0, 0];

  /** Takes `stamp` as the position held in `kind`'s stream; undefined forgets it. */
  set(kind: StreamKindCode, stamp: StreamStamp | undefined): void {
    this.#epochs[kind] = stamp?.epoch ?? 0;
    this.#offsets[kind] = stamp?.offset ?? 0;
  }

  /**
   * Whether `frame` goes to the connection: anything but op 18, and an op 18
   * past the position held (which it then becomes). A frame of another epoch
   * passes: the client learns from it that its stream broke.
   */
  admits(frame: Uint8Array): boolean {
    if (frameOp(frame) !== Op.StreamPush) return true;
    const kind = frame[HEADER_SIZE]!;
    if (kind !== StreamKind.Room && kind !== StreamKind.Mid && kind !== StreamKind.All) {
      return true;
    }
    const epoch = streamPushEpoch(frame);
    const offset = streamPushOffset(frame);
    if (epoch === this.#epochs[kind] && offset <= this.#offsets[kind]!) return false;
    this.#epochs[kind] = epoch;
    this.#offsets[kind] = offset;
    return true;
  }
}
