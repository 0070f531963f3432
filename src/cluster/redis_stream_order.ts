/**
 * How one node of a {@linkcode RedisCluster} keeps each stream in order
 * (streams on): Redis publishes a stream's pushes in offset order, but a
 * node can miss some (its pub/sub connection dropped, Redis dropped a slow
 * subscriber). The node remembers, per stream it has readers for, the last
 * offset it delivered, and fetches what it missed from Redis before it
 * delivers anything later of that stream.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { CometObserver } from "../server/comet_observer.ts";
import type { Push } from "../server/push.ts";
import { ALL_STREAM, midStream, roomStream, type StreamStamp } from "../server/streams.ts";
import type { ClusterHub } from "./cluster.ts";
import type { KeptPush, ReadQuery, RedisHistory, StreamRead } from "./redis_history.ts";

/** How long a node waits for its own push to come back before it reports 0 local. */
const _OWN_TIMEOUT = 2_000;
/** Streams read per round trip when filling after a reconnect. */
const _REFILL_BATCH = 100;

/** What a node knows of one stream it has readers for. */
interface _Record {
  epoch: number;
  /** The last offset delivered. */
  last: number;
  /** Pushes of the stream that came while a fill runs, in order; undefined when none runs. */
  held: Push[] | undefined;
  /**
   * `last` is a reader's answered position, not a push seen here: pushes up
   * to it still on their way go through (earlier readers may need them; the
   * answered reader's connection drops them), the next one past it sets the
   * record going.
   */
  floor?: boolean;
}

type _Decision = "deliver" | "drop" | "hold" | "gap";

/**
 * Options of {@linkcode StreamOrder}.
 *
 * @example
 * ```ts ignore
 * import type { StreamOrderOptions } from "./redis_stream_order.ts";
 * declare const hub: import("./cluster.ts").ClusterHub;
 * declare const history: import("./redis_history.ts").RedisHistory;
 * const options: StreamOrderOptions = { hub, history, deliver: (p) => hub.deliver(p), logger: hub.logger };
 * ```
 */
export interface StreamOrderOptions {
  /** Whose rooms tell which room streams have readers here. */
  hub: ClusterHub;
  /** Where missed pushes are read. */
  history: RedisHistory;
  /** Hands a push to the hub (and copes with what it refuses); returns the connections reached. */
  deliver: (push: Push) => number;
  /** Where failed fills are logged. */
  logger: Logger;
}

/**
 * Delivers stamped pushes of each stream in offset order, once, filling the
 * gaps it can from Redis: a push whose offset is past the next one starts a
 * fill of the offsets between, and later pushes of that stream wait for it.
 * A new epoch starts the stream afresh (no fill). It knows only streams
 * with readers on this node (rooms with members, users with connections,
 * everyone), and forgets a stream when its last reader goes.
 *
 * @example
 * ```ts ignore
 * import { StreamOrder } from "./redis_stream_order.ts";
 * declare const options: import("./redis_stream_order.ts").StreamOrderOptions;
 * const order = new StreamOrder(options);
 * order.offer({ kind: "room", op: 1000, room: "live://1", body: new Uint8Array(), stamp: { epoch: 9, offset: 1 } });
 * console.log(order.gapsFilled); // 0
 * ```
 */
export class StreamOrder {
  /** Pushes fetched from Redis to fill gaps, since start. */
  gapsFilled = 0;
  #hub: ClusterHub;
  #history: RedisHistory;
  #deliver: (push: Push) => number;
  #logger: Logger;
  #records = new Map<string, _Record>();
  /** Open connections per user on this node. */
  #mids = new Map<number, number>();
  #waiters = new Map<
    number,
    { resolve: (count: number) => void; timer: ReturnType<typeof setTimeout> }
  >();
  #nextId = 0;
  #fills = new Set<Promise<void>>();

  constructor(options: StreamOrderOptions) {
    this.#hub = options.hub;
    this.#history = options.history;
    this.#deliver = options.deliver;
    this.#logger = options.logger;
    for (const connection of options.hub.openSessions()) this.opened(connection.mid);
  }

  /**
   * Delivers `push` now, or holds it behind a fill; a push without stamps
   * is delivered as it is. `id`, for this node's own push, settles what
   * {@linkcode StreamOrder.expect} gave with the connections reached now.
   */
  offer(push: Push, id?: number): void {
    let count = 0;
    switch (push.kind) {
      case "room":
      case "all": {
        const stream = push.kind === "room" ? roomStream(push.room) : ALL_STREAM;
        count = push.stamp === undefined
          ? this.#deliver(push)
          : this.#one(stream, push.stamp, push);
        break;
      }
      case "mids":
        count = this.#toUsers(push);
        break;
      default:
        count = this.#deliver(push);
    }
    if (id !== undefined) this.settle(id, count);
  }

  /**
   * A number for this node's next push, and a promise of the connections
   * it reached here once it comes back (0 when it does not within 2 s).
   */
  expect(): { id: number; local: Promise<number> } {
    const id = ++this.#nextId;
    const { promise, resolve } = Promise.withResolvers<number>();
    const timer = setTimeout(() => this.settle(id, 0), _OWN_TIMEOUT);
    this.#waiters.set(id, { resolve, timer });
    return { id, local: promise };
  }

  /** Settles what {@linkcode StreamOrder.expect} gave for `id`; later calls do nothing. */
  settle(id: number, count: number): void {
    const waiter = this.#waiters.get(id);
    if (waiter === undefined) return;
    this.#waiters.delete(id);
    clearTimeout(waiter.timer);
    waiter.resolve(count);
  }

  /** A connection of user `mid` opened here. */
  opened(mid: number): void {
    this.#mids.set(mid, (this.#mids.get(mid) ?? 0) + 1);
  }

  /** A connection of user `mid` closed here; the user's last forgets its stream. */
  closed(mid: number): void {
    const n = (this.#mids.get(mid) ?? 0) - 1;
    if (n > 0) {
      this.#mids.set(mid, n);
      return;
    }
    this.#mids.delete(mid);
    this.#records.delete(midStream(mid));
  }

  /**
   * `observer` with this order's hooks added: it hears the readers of
   * users' streams come and go, and rooms empty.
   */
  observe(observer: CometObserver): CometObserver {
    return {
      ...observer,
      opened: (ch) => {
        observer.opened?.(ch);
        this.opened(ch.mid);
      },
      closed: (ch) => {
        observer.closed?.(ch);
        this.closed(ch.mid);
      },
      roomClosed: (room) => {
        observer.roomClosed?.(room);
        this.roomClosed(room);
      },
    };
  }

  /**
   * A reader here was told `stream` stands at (`epoch`, `top`). With no
   * record of the stream yet, that is where this node stands too: a push
   * after `top` that never reached this node (it had no reader when the push
   * was routed) is then a gap to fill, not a silent loss, and pushes up to
   * `top` still on their way are delivered (see `_Record.floor`).
   */
  answered(stream: string, epoch: number, top: number): void {
    if (this.#records.has(stream) || !this.#hasReaders(stream)) return;
    this.#records.set(stream, { epoch, last: top, held: undefined, floor: true });
  }

  /** Room `room` lost its last member here: forget its stream. */
  roomClosed(room: string): void {
    this.#records.delete(roomStream(room));
  }

  /**
   * Fetches, for every stream with readers here, what was published after
   * the last push delivered (call it once the subscriber is back), and
   * forgets streams without readers. Resolves when done.
   */
  refill(): Promise<void> {
    const done = this.#refill();
    this.#track(done);
    return done;
  }

  async #refill(): Promise<void> {
    const batch: [string, _Record][] = [];
    for (const [stream, record] of this.#records) {
      if (!this.#hasReaders(stream)) this.#records.delete(stream);
      else if (record.held === undefined && record.epoch !== 0) {
        record.held = [];
        batch.push([stream, record]);
      }
    }
    for (let i = 0; i < batch.length; i += _REFILL_BATCH) {
      await this.#fill(batch.slice(i, i + _REFILL_BATCH));
    }
  }

  /** Settles every waiter with 0 and waits for fills under way. */
  async close(): Promise<void> {
    for (const id of [...this.#waiters.keys()]) this.settle(id, 0);
    await Promise.all(this.#fills);
  }

  // --- one stream ----------------------------------------------------------------

  /** Delivers, drops or holds a push of one stream; the connections reached now. */
  #one(stream: string, stamp: StreamStamp, push: Push): number {
    const decision = this.#decide(stream, stamp);
    if (decision === "deliver") return this.#deliver(push);
    if (decision !== "drop") this.#hold(stream, push, decision, stamp.offset);
    return 0;
  }

  /** Holds `push` (at `offset`) behind its stream's fill; a gap starts the fill before it. */
  #hold(stream: string, push: Push, decision: "hold" | "gap", offset: number): void {
    const record = this.#records.get(stream)!;
    if (decision === "hold") record.held!.push(push);
    else {
      record.held = [push];
      this.#track(this.#fill([[stream, record]], offset - 1));
    }
  }

  #decide(stream: string, stamp: StreamStamp): _Decision {
    const record = this.#records.get(stream);
    if (record === undefined) {
      if (this.#hasReaders(stream)) {
        this.#records.set(stream, { epoch: stamp.epoch, last: stamp.offset, held: undefined });
      }
      return "deliver";
    }
    if (record.held !== undefined) return "hold";
    if (record.floor) {
      if (record.epoch === stamp.epoch && stamp.offset <= record.last) return "deliver";
      record.floor = false;
    }
    // Another epoch: Redis lost the stream's history, so there is nothing to fill.
    if (record.epoch !== stamp.epoch) {
      record.epoch = stamp.epoch;
      record.last = stamp.offset;
      return "deliver";
    }
    if (stamp.offset <= record.last) return "drop";
    if (stamp.offset > record.last + 1) return "gap";
    record.last = stamp.offset;
    return "deliver";
  }

  /** A push to users: whole when every stream is in order, else split by stream. */
  #toUsers(push: Push & { kind: "mids" }): number {
    const stamps = push.stamps;
    if (stamps === undefined) return this.#deliver(push);
    const { mids, op, body } = push;
    let decisions: _Decision[] | undefined;
    for (let i = 0; i < mids.length; i++) {
      const stamp = stamps[i];
      const decision = stamp === undefined ? "deliver" : this.#decide(midStream(mids[i]!), stamp);
      if (decision !== "deliver") decisions ??= new Array(i).fill("deliver");
      decisions?.push(decision);
    }
    if (decisions === undefined) return this.#deliver(push);
    const now: number[] = [];
    const nowStamps: (StreamStamp | undefined)[] = [];
    for (let i = 0; i < mids.length; i++) {
      const mid = mids[i]!;
      const stamp = stamps[i];
      const decision = decisions[i]!;
      if (decision === "deliver") {
        now.push(mid);
        nowStamps.push(stamp);
      } else if (decision !== "drop") {
        const piece: Push = { kind: "mids", op, mids: [mid], body, stamps: [stamp] };
        this.#hold(midStream(mid), piece, decision, stamp!.offset);
      }
    }
    if (now.length === 0) return 0;
    return this.#deliver({ kind: "mids", op, mids: now, body, stamps: nowStamps });
  }

  // --- fills -----------------------------------------------------------------------

  /**
   * Reads what each stream missed after its last offset (up to `to`, else
   * to its top), delivers it in order, then what was held meanwhile.
   */
  async #fill(streams: [string, _Record][], to?: number): Promise<void> {
    const queries: ReadQuery[] = streams.map(([stream, { epoch, last }]) => ({
      stream,
      from: { epoch, offset: last },
      ...(to !== undefined && { to }),
    }));
    let reads: StreamRead[] | undefined;
    try {
      reads = await this.#history.read(queries);
    } catch (err) {
      this.#logger.warn("Could not fetch missed stream pushes from Redis", {
        streams: streams.length,
        error: err,
      });
    }
    for (let i = 0; i < streams.length; i++) {
      const [stream, record] = streams[i]!;
      const read = reads?.[i];
      if (read !== undefined) this.#filled(stream, record, read, to);
      // What could not be fetched is lost: the held pushes go on from past the gap.
      else if (to !== undefined) record.last = Math.max(record.last, to);
      this.#release(stream, record);
    }
  }

  #filled(stream: string, record: _Record, read: StreamRead, to: number | undefined): void {
    if (read.epoch !== record.epoch) {
      // The history this node followed is gone: the next push starts the stream afresh.
      record.epoch = 0;
      return;
    }
    const epoch = record.epoch;
    record.floor = false;
    for (const entry of read.entries) {
      if (entry.offset <= record.last) continue;
      if (to !== undefined && entry.offset > to) break;
      record.last = entry.offset;
      this.gapsFilled++;
      this.#deliver(_push(stream, entry, { epoch, offset: entry.offset }));
    }
    // Trimmed before this node could fetch them: gone for good.
    record.last = Math.max(record.last, to ?? read.top);
  }

  /** Offers again, in order, what waited behind a fill. */
  #release(stream: string, record: _Record): void {
    const held = record.held ?? [];
    record.held = undefined;
    for (let i = 0; i < held.length; i++) {
      const push = held[i]!;
      const stamp = push.kind === "mids"
        ? push.stamps![0]!
        : (push as { stamp: StreamStamp }).stamp;
      this.#one(stream, stamp, push);
    }
  }

  #track(fill: Promise<void>): void {
    this.#fills.add(fill);
    void fill.finally(() => this.#fills.delete(fill));
  }

  #hasReaders(stream: string): boolean {
    if (stream === ALL_STREAM) return true;
    if (stream.startsWith("room:")) return this.#hub.rooms.has(stream.slice(5));
    if (stream.startsWith("mid:")) return this.#mids.has(Number(stream.slice(4)));
    return false;
  }
}

/** The push a kept entry of `stream` was. */
function _push(stream: string, entry: KeptPush, stamp: StreamStamp): Push {
  const { op, body } = entry;
  if (stream.startsWith("room:")) return { kind: "room", op, room: stream.slice(5), body, stamp };
  if (stream.startsWith("mid:")) {
    return { kind: "mids", op, mids: [Number(stream.slice(4))], body, stamps: [stamp] };
  }
  return { kind: "all", op, speed: 0, body, stamp };
}
