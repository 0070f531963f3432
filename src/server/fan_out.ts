import { encodeFrame } from "../protocol/frame.ts";
import { isReservedOp, RESERVED_OPS } from "../protocol/op.ts";
import type { Logger } from "../log.ts";
import { sleep } from "./_util.ts";
import type { Backlog } from "./backlog.ts";
import { BacklogFullError } from "./backlog_full_error.ts";
import type { Bucket } from "./bucket.ts";
import { Channel } from "./channel.ts";
import { SharedFrame } from "./frame_queue.ts";
import type { CometStats } from "./hub_stats.ts";
import type { Registry } from "./registry.ts";

/**
 * The frame of a push of `op`. The protocol's own operations are refused: op 6
 * would close a client's session while the hub still counts it, op 9 with a
 * body that is not frames would break its reader.
 */
function _pushFrame(op: number, body: Uint8Array): Uint8Array {
  if (isReservedOp(op)) {
    throw new RangeError(
      `Operation is reserved by the protocol (${RESERVED_OPS.min} to ${RESERVED_OPS.max}): ${op}`,
    );
  }
  return encodeFrame(op, 0, body);
}

/**
 * The push path: encodes a push's frame once, checks that it fits the
 * backlog's caps (a push is refused whole or reaches everyone it is for),
 * and queues it to the connections it is for: by key, by user, by room (the
 * room's log, one append per bucket) or to everyone, paced if asked.
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
 * console.log(fanOut.room("live://1", 1000, new Uint8Array())); // 0
 * ```
 */
export class FanOut {
  #registry: Registry;
  #backlog: Backlog;
  #stats: CometStats;
  #logger: Logger;
  #pacing = new AbortController();

  /** Pushes to `registry`'s connections, counting in `stats`. */
  constructor(registry: Registry, backlog: Backlog, stats: CometStats, logger: Logger) {
    this.#registry = registry;
    this.#backlog = backlog;
    this.#stats = stats;
    this.#logger = logger;
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

  /** To every connection of these users that watches `op`; how many queued it. */
  mids(mids: Iterable<number>, op: number, body: Uint8Array): number {
    const frame = _pushFrame(op, body);
    const targets: Channel[] = [];
    const registry = this.#registry;
    for (const mid of mids) {
      const entry = registry.mid(mid);
      if (entry === undefined) continue;
      if (entry instanceof Channel) {
        if (entry.watches(op)) targets.push(entry);
      } else {
        for (const ch of entry) if (ch.watches(op)) targets.push(ch);
      }
    }
    this.#fits(frame, targets.length);
    let n = 0;
    for (const ch of targets) if (ch.push(frame)) n++;
    this.#stats.pushes.mids++;
    this.#stats.deliveries += n;
    return n;
  }

  /** To every member of `room`, watched or not; how many queued it. */
  room(room: string, op: number, body: Uint8Array): number {
    const frame = _pushFrame(op, body);
    let n = 0;
    const registry = this.#registry;
    if (registry.rooms.has(room)) {
      const buckets = registry.buckets;
      // Checked whole before any part queues it: a push is refused whole or reaches every member.
      let parts = 0;
      for (const bucket of buckets) {
        const part = bucket.rooms.get(room);
        if (part === undefined) continue;
        parts++;
        if (!part.admits(frame.length)) {
          this.#full(
            "room",
            `Room backlog is full: ${room} holds ${part.bytes} bytes in one bucket, the cap is ${this.#backlog.maxRoomBytes}`,
          );
        }
      }
      this.#fits(frame, parts);
      for (const bucket of buckets) n += bucket.rooms.get(room)?.push(frame) ?? 0;
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
  all(op: number, body: Uint8Array, speed: number): number {
    const frame = _pushFrame(op, body);
    if (!(speed >= 0)) throw new RangeError(`Speed must be a non-negative number: ${speed}`);
    // One allocation shared by every queue: its bytes count once.
    this.#fits(frame, 1);
    const shared = new SharedFrame(frame.length);
    this.#stats.pushes.all++;
    if (speed > 0) {
      this.#paced(frame, shared, op, speed).catch((err) => {
        this.#logger.warn("Paced broadcast failed", { error: err });
      });
      return 0;
    }
    let n = 0;
    for (const bucket of this.#registry.buckets) n += this.#pushBucket(bucket, frame, shared, op);
    return n;
  }

  /** Stops paced broadcasts under way; the hub is closing. */
  stop(): void {
    this.#pacing.abort();
  }

  /**
   * Checks that `copies` references to `frame` fit in the backlog.
   *
   * @throws {BacklogFullError} When they do not; counted.
   */
  #fits(frame: Uint8Array, copies: number): void {
    const backlog = this.#backlog;
    if (backlog.admits(frame.length, copies)) return;
    this.#full(
      "server",
      `Backlog is full: ${backlog.bytes} bytes queued, ${
        frame.length * copies
      } more would pass the cap of ${backlog.maxBytes}`,
    );
  }

  /** Counts a push refused by a backlog cap and throws its error. */
  #full(scope: "room" | "server", message: string): never {
    this.#stats.pushesRefused[scope]++;
    throw new BacklogFullError(message, scope);
  }

  #pushBucket(bucket: Bucket, frame: Uint8Array, shared: SharedFrame, op: number): number {
    let n = 0;
    for (const ch of bucket.channels.values()) {
      if (ch.watches(op) && ch.pushShared(frame, shared)) n++;
    }
    this.#stats.deliveries += n;
    return n;
  }

  async #paced(frame: Uint8Array, shared: SharedFrame, op: number, speed: number): Promise<void> {
    const signal = this.#pacing.signal;
    for (const bucket of this.#registry.buckets) {
      if (signal.aborted) return;
      const size = bucket.size;
      this.#pushBucket(bucket, frame, shared, op);
      const pause = (size / speed) * 1000;
      if (pause >= 1) await sleep(pause, signal);
    }
  }
}
