/**
 * What one write of a channel holds: its own queue first, then its room's
 * frames from its cursor on, up to a byte budget, encoded by its wire into
 * one buffer.
 *
 * @module
 */
import { frameOp } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import type { FrameQueue } from "./frame_queue.ts";
import type { RoomLog } from "./room_member.ts";
import type { Wire } from "./wire.ts";

/**
 * Bytes one write takes at most (a larger frame goes alone, uncopied). A
 * write is one buffer made for one connection: unbounded, a slow reader's
 * backlog became a private copy of every frame queued to it.
 */
export const MAX_WRITE_BYTES = 64 * 1024;

/** What a write is taken from: the wire that encodes it and the room log with the cursor. */
export interface WriteSource {
  /** The connection's transport; it encodes the batch. */
  readonly wire: Wire;
  /** The room log the connection reads, if any. */
  _log: RoomLog | undefined;
  /** Number of the next log frame it takes; moved past what the write takes. */
  _cursor: number;
}

// Writers fill this between two awaits only, so every channel can share it.
const _batch: Uint8Array[] = [];

/**
 * What is queued to `source`, up to {@linkcode MAX_WRITE_BYTES} (at least
 * one frame), encoded as one write: `queue` first, then the room's frames
 * from the cursor on (anything queued to it alone after a room frame caught
 * the room frames up first). Moves the cursor past the room frames taken.
 * Undefined when nothing is queued.
 *
 * @example
 * ```ts ignore
 * import { takeWrite } from "./write_batch.ts";
 * const bytes = takeWrite(channel, ownQueue); // one buffer for one wire.write
 * ```
 */
export function takeWrite(
  source: WriteSource,
  queue: FrameQueue | undefined,
): Uint8Array | undefined {
  const queued = queue === undefined ? 0 : queue.length;
  const log = source._log;
  const from = source._cursor;
  const end = log === undefined ? from : log._end;
  if (queued + end - from === 0) return undefined;
  const wire = source.wire;
  let data: Uint8Array | undefined;
  let to = from;
  // Room frames alone, on a wire that shares its encoding: likely encoded already.
  let key = queued === 0 ? wire.sharedEncoding : undefined;
  if (key !== undefined) {
    const run = log!._run(key, from, end);
    if (run !== undefined) {
      data = run.bytes;
      to = run.to;
    } else if (frameOp(log!._frame(end - 1)) === Op.DisconnectReply) key = undefined;
  }
  if (data === undefined) {
    let count = 0;
    let bytes = 0;
    // Own frames within the budget; room frames only once they are all taken, as they come after.
    while (
      count < queued && (count === 0 || bytes + queue!.nextLength <= MAX_WRITE_BYTES)
    ) {
      const chunk = queue!.shift()!;
      _batch[count++] = chunk;
      bytes += chunk.length;
    }
    if (count === queued && end > from) {
      to = log!._span(from, end, MAX_WRITE_BYTES - bytes, count === 0);
      bytes += log!._copy(from, to, _batch, count);
      count += to - from;
    }
    try {
      data = wire.encode(_batch, count, bytes);
    } finally {
      // A loop, not `fill`: a builtin call costs more than clearing a few slots.
      for (let i = 0; i < count; i++) _batch[i] = undefined as unknown as Uint8Array;
    }
    if (key !== undefined) log!._keepRun(key, from, to, end, data);
  }
  source._cursor = to;
  return data;
}
