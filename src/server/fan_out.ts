import { encodeFrame } from "../protocol/frame.ts";
import { assertPushOp } from "../protocol/op.ts";
import { encodeStreamPush, STREAM_PUSH_PREFIX, StreamKind } from "../protocol/stream_push.ts";
import type { Logger } from "../log.ts";
import { sleep } from "./_util.ts";
import type { Backlog } from "./backlog.ts";
import { BacklogFullError } from "./backlog_full_error.ts";
import type { Bucket } from "./bucket.ts";
import { Channel } from "./channel.ts";
import { SharedFrame } from "./frame_queue.ts";
import type { CometStats } from "./hub_stats.ts";
import type { Push } from "./push.ts";
import type { Registry } from "./registry.ts";
import type { Room } from "./room.ts";
import { ALL_STREAM, midStream, roomStream, type StreamHistory } from "./streams.ts";

type _MidsPush = Extract<Push, { kind: "mids" }>;
type _RoomPush = Extract<Push, { kind: "room" }>;
type _AllPush = Extract<Push, { kind: "all" }>;

/** A broadcast under way: its frames, and the op-18 one for streamed connections. */
interface _Broadcast {
  readonly op: number;
  readonly frame: Uint8Array;
  readonly shared: SharedFrame;
  /** The op-18 frame; undefined when the push has no stamp or nobody takes one. */
  readonly stream: Uint8Array | undefined;
  readonly streamShared: SharedFrame | undefined;
}

/**
 * The frame of a push of `op`. The protocol's own operations are refused: op 6
 * would close a client's session while the hub still counts it, op 9 with a
 * body that is not frames would break its reader.
 */
function _pushFrame(op: number, body: Uint8Array): Uint8Array {
  assertPushOp(op);
  return encodeFrame(op, 0, body);
}

/**
 * The push path: encodes a push's frame once, checks that it fits the
 * backlog's caps (a push is refused whole or reaches everyone it is for),
 * and queues it to the connections it is for: by key, by user, by room (the
 * room's log, one append per bucket) or to everyone, paced if asked.
 *
 * With a history, a push to a room, users or everyone gets its stamp in each
 * stream (unless it came stamped) once it fits, and connections that opted
 * in take an op-18 frame, encoded once per push and stream and shared,
 * instead of the plain one (docs/protocol.md, section 8).
 *
 * @example
 * ```ts
 * import { Backlog } from "./backlog.ts";
 * import { FanOut } from "./fan_out.ts";
 * import { HubEvents } from "./hub_events.ts";
 * import { newStats } from "./hub_stats.ts";
 * import { Registry } from "./registry.ts";
 * import { silentLogger } from "../log.ts";
 *
 * const backlog = new Backlog();
 * const registry = new Registry(4, backlog, new HubEvents(silentLogger));
 * const fanOut = new FanOut(registry, backlog, newStats(), silentLogger);
 * console.log(fanOut.room({ kind: "room", room: "live://1", op: 1000, body: new Uint8Array() })); // 0
 * ```
 */
export class FanOut {
  #registry: Registry;
  #backlog: Backlog;
  #stats: CometStats;
  #logger: Logger;
  #history: StreamHistory | undefined;
  #pacing = new AbortController();

  /**
   * Pushes to `registry`'s connections, counting in `stats`; `history`
   * stamps pushes to streams (undefined: streams are off).
   */
  constructor(
    registry: Registry,
    backlog: Backlog,
    stats: CometStats,
    logger: Logger,
    history?: StreamHistory,
  ) {
    this.#registry = registry;
    this.#backlog = backlog;
    this.#stats = stats;
    this.#logger = logger;
    this.#history = history;
  }

  /** To the connections with these keys that watch `op`; how many queued it. */
  keys(keys: Iterable<string>, op: number, body: Uint8Array): number {
    const frame = _pushFrame(op, body);
    const targets: Channel[] = [];
    const registry = this.#registry;
    for (const key of keys) {
      const ch = registry.channel(key);
      if (ch !== undefined && ch.watches(op)) targets.push(ch);
    }
    this.#fits(frame, targets.length);
    let n = 0;
    for (const ch of targets) if (ch.push(frame)) n++;
    this.#stats.pushes.keys++;
    this.#stats.deliveries += n;
    return n;
  }

  /**
   * To every connection of these users that watches `op`; how many queued
   * it. Each user's stream stamps it (see the class).
   */
  mids(push: _MidsPush): number {
    const { mids, op, body } = push;
    const frame = _pushFrame(op, body);
    const targets: Channel[] = [];
    // Each streamed target's index in `mids`, in target order, for its user's stamp.
    let of: number[] | undefined;
    const registry = this.#registry;
    for (let i = 0; i < mids.length; i++) {
      const entry = registry.mid(mids[i]!);
      if (entry === undefined) continue;
      if (entry instanceof Channel) {
        if (entry.watches(op)) of = _target(targets, of, entry, i);
      } else {
        for (const ch of entry) if (ch.watches(op)) of = _target(targets, of, ch, i);
      }
    }
    this.#fits(frame, targets.length, (of?.length ?? 0) * STREAM_PUSH_PREFIX);
    let stamps = push.stamps;
    const history = this.#history;
    if (stamps === undefined && history !== undefined) {
      stamps = push.stamps = new Array(mids.length);
      for (let i = 0; i < mids.length; i++) {
        stamps[i] = history.append(midStream(mids[i]!), op, body);
      }
    }
    // One op-18 frame per user, shared by its devices; made only for users with one opted in.
    let frames: (Uint8Array | undefined)[] | undefined;
    let n = 0;
    let k = 0;
    for (const ch of targets) {
      let out = frame;
      if (ch._streamed) {
        const i = of![k++]!;
        const stamp = stamps?.[i];
        if (stamp !== undefined) {
          frames ??= new Array(mids.length);
          out = frames[i] ??= encodeStreamPush(StreamKind.Mid, stamp.epoch, stamp.offset, op, body);
        }
      }
      if (ch.push(out)) n++;
    }
    this.#stats.pushes.mids++;
    this.#stats.deliveries += n;
    return n;
  }

  /**
   * To every member of `room`, watched or not; how many queued it. The
   * room's stream stamps it (see the class).
   */
  room(push: _RoomPush): number {
    const { room, op, body } = push;
    const frame = _pushFrame(op, body);
    let n = 0;
    const registry = this.#registry;
    const here = registry.rooms.has(room);
    // Op-18 copies: one per twin log read, and one shared by every streamed member's own queue.
    let streamed = 0;
    if (here) {
      const buckets = registry.buckets;
      // Checked whole before any part queues it: a push is refused whole or reaches every member.
      let parts = 0;
      let shared = 0;
      for (const bucket of buckets) {
        const part = bucket.rooms.get(room);
        if (part === undefined) continue;
        if (part.streamed > 0) shared = 1;
        const twin = part.twin;
        if (twin !== undefined && twin.reading > 0) {
          streamed++;
          if (!twin.admits(frame.length + STREAM_PUSH_PREFIX)) this.#roomFull(room, twin);
        }
        if (part.reading === 0) continue;
        parts++;
        if (!part.admits(frame.length)) this.#roomFull(room, part);
      }
      streamed += shared;
      this.#fits(frame, parts + streamed, streamed * STREAM_PUSH_PREFIX);
    }
    const history = this.#history;
    if (push.stamp === undefined && history !== undefined) {
      const stamp = history.append(roomStream(room), op, body);
      if (stamp !== undefined) push.stamp = stamp;
    }
    if (here) {
      const stamp = push.stamp;
      let stream: Uint8Array | undefined;
      let shared: SharedFrame | undefined;
      if (streamed > 0) {
        stream = stamp === undefined
          ? frame
          : encodeStreamPush(StreamKind.Room, stamp.epoch, stamp.offset, op, body);
        shared = new SharedFrame(stream.length);
      }
      for (const bucket of registry.buckets) {
        const part = bucket.rooms.get(room);
        if (part === undefined) continue;
        n += part.push(frame);
        if (stream === undefined) continue;
        // The twin's log first: a member that moves to it in pushStream starts past this frame.
        if (part.twin !== undefined) n += part.twin.push(stream);
        if (part.streamed > 0) n += part.pushStream(stream, shared!);
      }
    }
    this.#stats.pushes.room++;
    this.#stats.deliveries += n;
    return n;
  }

  /**
   * To every connection that watches `op`; with `speed` > 0 paced bucket by
   * bucket in the background, and 0 is returned at once.
   *
   * @throws {RangeError} When `speed` is negative.
   */
  all(push: _AllPush): number {
    const { op, body, speed } = push;
    const frame = _pushFrame(op, body);
    if (!(speed >= 0)) throw new RangeError(`Speed must be a non-negative number: ${speed}`);
    // A paced broadcast may meet connections that opt in meanwhile: it makes the op-18 frame too.
    const history = this.#history;
    const streams = (history !== undefined || push.stamp !== undefined) &&
      (speed > 0 || this.#registry.streamed > 0);
    // One allocation shared by every queue: its bytes count once.
    this.#fits(frame, streams ? 2 : 1, streams ? STREAM_PUSH_PREFIX : 0);
    if (push.stamp === undefined && history !== undefined) {
      const stamp = history.append(ALL_STREAM, op, body);
      if (stamp !== undefined) push.stamp = stamp;
    }
    const stamp = push.stamp;
    const stream = streams && stamp !== undefined
      ? encodeStreamPush(StreamKind.All, stamp.epoch, stamp.offset, op, body)
      : undefined;
    const cast: _Broadcast = {
      op,
      frame,
      shared: new SharedFrame(frame.length),
      stream,
      streamShared: stream === undefined ? undefined : new SharedFrame(stream.length),
    };
    this.#stats.pushes.all++;
    if (speed > 0) {
      this.#paced(cast, speed).catch((err) => {
        this.#logger.warn("Paced broadcast failed", { error: err });
      });
      return 0;
    }
    let n = 0;
    for (const bucket of this.#registry.buckets) n += this.#pushBucket(bucket, cast);
    return n;
  }

  /** Stops paced broadcasts under way; the hub is closing. */
  stop(): void {
    this.#pacing.abort();
  }

  /**
   * Checks that `copies` references to `frame`, and `extra` bytes more
   * (op-18 prefixes), fit in the backlog.
   *
   * @throws {BacklogFullError} When they do not; counted.
   */
  #fits(frame: Uint8Array, copies: number, extra = 0): void {
    const backlog = this.#backlog;
    const bytes = frame.length * copies + extra;
    if (backlog.admits(bytes, 1)) return;
    this.#full(
      "server",
      `Backlog is full: ${backlog.bytes} bytes queued, ${bytes} more would pass the cap of ${backlog.maxBytes}`,
    );
  }

  /** Refuses a push to `room`, whose `part` in one bucket is at the room cap. */
  #roomFull(room: string, part: Room): never {
    this.#full(
      "room",
      `Room backlog is full: ${room} holds ${part.bytes} bytes in one bucket, the cap is ${this.#backlog.maxRoomBytes}`,
    );
  }

  /** Counts a push refused by a backlog cap and throws its error. */
  #full(scope: "room" | "server", message: string): never {
    this.#stats.pushesRefused[scope]++;
    throw new BacklogFullError(message, scope);
  }

  #pushBucket(bucket: Bucket, cast: _Broadcast): number {
    const { op, frame, shared, stream, streamShared } = cast;
    let n = 0;
    for (const ch of bucket.channels.values()) {
      if (!ch.watches(op)) continue;
      const ok = stream !== undefined && ch._streamed
        ? ch.pushShared(stream, streamShared!)
        : ch.pushShared(frame, shared);
      if (ok) n++;
    }
    this.#stats.deliveries += n;
    return n;
  }

  async #paced(cast: _Broadcast, speed: number): Promise<void> {
    const signal = this.#pacing.signal;
    for (const bucket of this.#registry.buckets) {
      if (signal.aborted) return;
      const size = bucket.size;
      this.#pushBucket(bucket, cast);
      const pause = (size / speed) * 1000;
      if (pause >= 1) await sleep(pause, signal);
    }
  }
}

/**
 * Adds `ch`, of the user at index `i`, to the targets, and `i` to `of` when
 * it takes op-18 frames: a plain receiver costs no index. Returns `of`,
 * made on the first such receiver.
 */
function _target(
  targets: Channel[],
  of: number[] | undefined,
  ch: Channel,
  i: number,
): number[] | undefined {
  targets.push(ch);
  if (ch._streamed) (of ??= []).push(i);
  return of;
}
