import { encodeFrame, type Frame } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import type { Connection } from "./connection.ts";
import type { ChannelOptions, ChannelState } from "./channel_options.ts";
import { DEFAULT_WRITE_TIMEOUT } from "./defaults.ts";
import { FrameQueue, type SharedFrame } from "./frame_queue.ts";
import { OpWatcher } from "./op_watcher.ts";
import type { HeldPushes } from "./held_pushes.ts";
import type { StreamPositions } from "./stream_positions.ts";
import type { RoomLog, RoomMember } from "./room_member.ts";
import type { Timer } from "./timer_heap.ts";
import type { ConnInfo, FrameReader, Wire } from "./wire.ts";
import { takeWrite } from "./write_batch.ts";
import { type SettledWriteTurn, WriteScheduler } from "./write_scheduler.ts";

export type { ChannelHooks, ChannelOptions, ChannelState, SlowPolicy } from "./channel_options.ts";

const _encoder = new TextEncoder();
const _EMPTY = new Uint8Array(0);

/** The UTF-8 bytes of a body given as text; an empty one (an auth reply's) allocates nothing. */
function _bytes(body: Uint8Array | string): Uint8Array {
  return typeof body !== "string" ? body : body === "" ? _EMPTY : _encoder.encode(body);
}

// For channels made without a hub: no stall timer, so nothing outlives a test.
let _sharedScheduler: WriteScheduler | undefined;

/**
 * One client connection: its identity (key, user, room, watched ops), its
 * outbound queue and its writer. The hub pushes encoded frames in; room
 * pushes stay in the room's log (see `Room`) and the channel keeps
 * its place in it. While something is queued the channel waits in its
 * {@linkcode WriteScheduler}'s line, and on its turn drains everything queued
 * (its own queue, then the room's frames from its place on) into one `write`.
 * Fields starting with `_` belong to the hub, buckets, rooms and the scheduler.
 */
export class Channel extends OpWatcher
  implements Connection, SettledWriteTurn, FrameReader, RoomMember {
  /** The connection's key; empty until authenticated. */
  key = "";
  /** The user id; 0 when anonymous. */
  mid = 0;
  /** The platform the client reported at auth. */
  platform = "";
  /** The transport underneath. */
  readonly wire: Wire;

  /** @internal Room id; empty when in no room. */
  _room = "";
  /** @internal Slot in the room's member array, for O(1) removal. */
  _roomSlot = -1;
  /** @internal The room part whose log this channel reads; undefined when in none, or closing. */
  _log: RoomLog | undefined;
  /** @internal Number of the next frame of `_log` this channel takes. */
  _cursor = 0;
  /** @internal Slot in the room's list of idle members; -1: not in it. */
  _idleSlot = -1;
  /** @internal Opted in with `recover` at auth: op 8 and op 13 carry JSON (protocol section 8). */
  _optedIn = false;
  /** @internal Takes op-18 frames for its streams: opted in, with the hub keeping history. */
  _streamed = false;
  /** @internal Slot in the room's list of streamed members; -1: not in it. */
  _streamSlot = -1;
  /** @internal See {@linkcode RoomMember._settled}. */
  _settled(): boolean {
    return this._held === undefined && this._positions !== undefined;
  }
  /** @internal Pushes held while its streams' positions are asked; see {@linkcode HeldPushes}. */
  _held: HeldPushes | undefined;
  /** @internal Its place in each stream, once answered: op 18 comes once. */
  _positions: StreamPositions | undefined;
  /** @internal The channel's handshake, heartbeat or close deadline. */
  _timer: Timer<Channel> | undefined;
  /** @internal Heartbeat deadline in milliseconds. */
  _heartbeat = 0;
  /** @internal When the credentials expire, on the hub's timer clock; Infinity: never. */
  _expiresAt = Infinity;
  /** @internal Rooms op 12 may move to; undefined: any. */
  _rooms: readonly string[] | undefined;
  /** @internal Whether every step of this connection is logged (its mid is traced). */
  _traced = false;
  /**
   * @internal The address the per-IP limits counted this connection under;
   * undefined while a proxied connection's client is not known yet.
   */
  _peerIp: string | undefined;
  /** @internal Tokens left in the upstream rate bucket. */
  _upTokens = 0;
  /** @internal When the upstream bucket was last refilled, on the hub's timer clock. */
  _upAt = 0;
  /** @internal Why the connection is closing or closed; empty when the peer left. */
  _closeReason = "";
  /** @internal The write scheduler's place held by this channel; -1: none. */
  _slot = -1;
  /** @internal When the current write turn began, on the scheduler's clock; -1: none under way. */
  _turnAt = -1;
  /** @internal Milliseconds of consecutive writes the socket took only part of; 0 after a whole one. */
  _refusedMs = 0;

  /**
   * Frames queued to this channel (not its room's log). Made on the first
   * one and let go of when the writer drains it: an idle connection has none.
   */
  #queue: FrameQueue | undefined;
  #options: ChannelOptions<Channel>;
  #state: ChannelState = "handshake";
  #flushed: (() => void) | undefined;
  /** Whether the channel is in the write line or writing; an idle channel is neither. */
  #flushing = false;
  /** Settles `_done()`; created only when someone waits for it. */
  #onDone: (() => void) | undefined;

  /**
   * Creates a channel in its handshake state; the hub does this per connection.
   *
   * @param wire The transport connection.
   * @param options The settings it shares with the hub's other channels.
   * @throws {RangeError} When `options.queueSize` is not a positive integer.
   */
  constructor(wire: Wire, options: ChannelOptions<Channel>) {
    const size = options.queueSize;
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new RangeError(`Queue size must be a positive integer: ${size}`);
    }
    const timeout = options.writeTimeout ?? DEFAULT_WRITE_TIMEOUT;
    if (!(timeout > 0)) throw new RangeError(`Write timeout must be positive: ${timeout}`);
    super();
    this.wire = wire;
    this.#options = options;
  }

  /** Transport facts: kind, remote address, upgrade headers. */
  get info(): ConnInfo {
    return this.wire.info;
  }

  /** The room the connection is in; empty when none. */
  get room(): string {
    return this._room;
  }

  /** Where the channel is in its life. */
  get state(): ChannelState {
    return this.#state;
  }

  /** Frames waiting for the writer, its room's included. */
  get queued(): number {
    const log = this._log;
    return (this.#queue?.length ?? 0) + (log === undefined ? 0 : log._end - this._cursor);
  }

  /** @internal Frames in the channel's own queue (not its room's log). */
  get _own(): number {
    return this.#queue?.length ?? 0;
  }

  /**
   * @internal Whether the connection is slow at time `now`: its socket has
   * refused what is written to it for the write timeout. Waiting for the
   * server's turn does not count, only time spent in writes.
   */
  _stuck(now: number): boolean {
    const writing = this._turnAt < 0 ? 0 : now - this._turnAt;
    return this._refusedMs + writing >= (this.#options.writeTimeout ?? DEFAULT_WRITE_TIMEOUT);
  }

  /** @internal Frames queued at most before the slow policy applies. */
  get _capacity(): number {
    return this.#options.queueSize;
  }

  /** @internal Whether the channel still takes frames: it is not closing or closed. */
  _reads(): boolean {
    return this.#state === "handshake" || this.#state === "open";
  }

  /** @internal Whether the writer is in the write line or writing. */
  _busy(): boolean {
    return this.#flushing;
  }

  /** @internal A frame was appended to the room log: an idle writer joins the write line. */
  _kick(): void {
    if (!this.#flushing) this.#startFlush();
  }

  /** @internal A room push this traced channel will take. */
  _roomPushed(frame: Uint8Array): void {
    this.#options.hooks.pushed?.(this, frame);
  }

  /**
   * @internal Moves the room frames this channel has not taken into its own
   * queue (at most `limit`), so that whatever is queued next goes out after
   * them. Returns how many were left behind.
   */
  _catchUp(limit = Infinity): number {
    const log = this._log;
    if (log === undefined) return 0;
    const end = log._end;
    const from = this._cursor;
    if (from === end) return 0;
    const queue = this.#own();
    const to = Math.min(end, from + limit);
    for (let n = from; n < to; n++) queue.push(log._frame(n), "room");
    this._cursor = end;
    return end - to;
  }

  /**
   * @internal The room is about to append frame `end` and this slow channel
   * holds a full queue: the slow policy applies. Under `drop` it keeps a
   * queue's worth of the oldest frames and loses the rest, frame `end` too.
   */
  _full(end: number): void {
    if (this.#options.slow === "close") return this.#overflow(1, true);
    const lost = this.#keep() + this._catchUp(Math.max(0, this.#options.queueSize - this._own));
    this._cursor = end + 1;
    this.#overflow(lost + 1, true);
  }

  /** @internal A frame from the listening wire, for the hub (see {@linkcode FrameReader}). */
  _frame(frame: Frame): boolean | Promise<boolean> {
    return this.#options.hooks.frame?.(this, frame) ?? false;
  }

  /** @internal The listening wire's stream ended, for the hub. */
  _ended(err?: unknown): void {
    this.#options.hooks.ended?.(this, err);
  }

  /** @internal Marks the channel authenticated. */
  _open(): void {
    if (this.#state === "handshake") this.#state = "open";
  }

  /**
   * Queues an already encoded frame pushed to this connection alone (its
   * key, its user). Never blocks. The slow-consumer policy applies when such
   * frames fill its queue, or when the queue is full and the connection is
   * slow (see {@linkcode ChannelOptions.writeTimeout}).
   *
   * @returns Whether the frame was queued.
   */
  push(frame: Uint8Array): boolean {
    return this.#enqueue(frame, "alone");
  }

  /**
   * Queues a frame shared with many connections (a broadcast's). It waits
   * for the server's turn like a room's frames do, so it never fills the
   * queue of a connection that reads: only a slow connection with a full
   * queue meets the slow-consumer policy. `shared` is the one description of
   * the frame every receiver is handed, so that its bytes count once.
   *
   * @returns Whether the frame was queued.
   */
  pushShared(frame: Uint8Array, shared: SharedFrame): boolean {
    return this.#enqueue(frame, shared);
  }

  #enqueue(frame: Uint8Array, kind: "alone" | SharedFrame): boolean {
    if (!this._reads()) return false;
    if (this._held !== undefined) {
      if (this._held.add(frame, kind)) return true;
      this.#overflow(1, false);
      return false;
    }
    if (this._positions !== undefined && !this._positions.admits(frame)) return false;
    this._catchUp();
    const queue = this.#own();
    const size = this.#options.queueSize;
    if (queue.length >= size) {
      const stuck = this._stuck(performance.now());
      if (stuck || (kind === "alone" && queue.alone >= size)) {
        this.#overflow(1 + (stuck && this.#options.slow === "drop" ? this.#keep() : 0), stuck);
        return false;
      }
    }
    queue.push(frame, kind);
    if (!this.#flushing) this.#startFlush();
    if (this._traced) this.#options.hooks.pushed?.(this, frame);
    return true;
  }

  /** @internal Queues an encoded answer to the client (op 8's replay): never limited, like a reply. */
  _pushReply(frame: Uint8Array): boolean {
    if (!this._reads()) return false;
    this._catchUp();
    this.#own().push(frame, "reply");
    if (!this.#flushing) this.#startFlush();
    return true;
  }

  /**
   * A slow connection under `drop` keeps its oldest queue's worth, as a
   * goim ring would; what it had queued past that before it counted as slow
   * goes. Returns how many frames went.
   */
  #keep(): number {
    return this.#queue?.truncate(this.#options.queueSize) ?? 0;
  }

  /**
   * Encodes and queues one frame to this connection alone.
   *
   * @returns Whether the frame was queued.
   */
  send(op: number, body: Uint8Array | string = "", seq = 0, ver = 1): boolean {
    return this.push(encodeFrame(op, seq, _bytes(body), ver));
  }

  /**
   * Queues a reply to the client's own request (auth, heartbeat, op 4, sub,
   * change room). Replies never trip the slow-consumer policy: the hub stops
   * reading from a client whose queue is full instead (see
   * {@linkcode Channel._writable}), so a client that sends faster than it
   * reads is throttled by its own TCP window rather than disconnected.
   *
   * @returns Whether the frame was queued (false once closing).
   */
  reply(op: number, body: Uint8Array | string, seq: number, ver: number): boolean {
    if (!this._reads()) return false;
    return this._pushReply(encodeFrame(op, seq, _bytes(body), ver));
  }

  /**
   * @internal Undefined while the channel's own queue has room; else a
   * promise that settles once the writer has flushed it (or the channel
   * closed). Room frames do not count: they wait for the server, not the client.
   */
  _writable(): Promise<void> | undefined {
    if (this._own < this.#options.queueSize || !this._reads()) return undefined;
    return new Promise<void>((resolve) => (this.#flushed = resolve));
  }

  /** @internal Lets go of the queue's storage if nothing is queued; the hub calls it at heartbeats. */
  _trim(): void {
    if (this.#queue?.release()) this.#queue = undefined;
  }

  /** @internal Upstream messages being handled by the operator right now. */
  _inflight = 0;
  /** @internal Wakes a reader waiting for a free upstream slot. */
  _onSlot: (() => void) | undefined;

  /**
   * Says goodbye: queues op 6 (DisconnectReply) with `reason` as its body after
   * whatever is queued, flushes, then closes. The flush is bounded by the
   * server's close grace; a peer that does not read is cut off after it.
   */
  close(reason = ""): void {
    this.#close(reason, false);
  }

  /** `discard`: what is queued goes unsent (a slow peer would not take it anyway). */
  #close(reason: string, discard: boolean): void {
    if (this.#state === "closing" || this.#state === "closed") return;
    this.#state = "closing";
    this._closeReason = reason;
    this._held = undefined;
    if (discard) this.#queue?.clear();
    else this._catchUp();
    this._log?._detach(this);
    this.#own().push(encodeFrame(Op.DisconnectReply, 0, _encoder.encode(reason)), "reply");
    if (!this.#flushing) this.#startFlush();
    this.#options.hooks.closing(this, this.#options.closeGrace);
  }

  /** Closes the connection at once, dropping anything queued. Idempotent. */
  abort(): void {
    this._log?._detach(this);
    this._held = undefined;
    this.#state = "closed";
    this.#queue?.clear();
    this.#queue = undefined;
    this.wire.close();
    this.#wakeReader();
    if (!this.#flushing) this.#settleDone();
  }

  /**
   * @internal Settles once the channel is closed and no flush is running any
   * more, i.e. the wire is closed and nothing will be written again.
   */
  _done(): Promise<void> {
    if (this.#state === "closed" && !this.#flushing) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const prev = this.#onDone;
      this.#onDone = prev === undefined ? resolve : () => {
        prev();
        resolve();
      };
    });
  }

  #settleDone(): void {
    const done = this.#onDone;
    if (done) {
      this.#onDone = undefined;
      done();
    }
  }

  /**
   * `count` frames found the queue full: the slow-consumer policy drops them
   * (counted) or closes. `stuck`: the socket refuses writes, so what is
   * queued goes unsent and only op 6 is tried.
   */
  #overflow(count: number, stuck: boolean): void {
    if (this.#options.slow === "drop") {
      this.#options.hooks.dropped(this, count);
    } else {
      this.#options.hooks.slow(this);
      this.#close("slow consumer", stuck);
    }
  }

  /** The channel's own queue, made when first needed. */
  #own(): FrameQueue {
    return this.#queue ??= new FrameQueue(this.#options.backlog);
  }

  #startFlush(): void {
    this.#flushing = true;
    (this.#options.writes ?? (_sharedScheduler ??= new WriteScheduler({ stallMs: Infinity })))
      .enqueue(this);
  }

  #wakeReader(): void {
    const wake = this.#flushed;
    if (wake) {
      this.#flushed = undefined;
      wake();
    }
  }

  /**
   * @internal One turn in the write line: drains everything queued into one
   * buffer ({@linkcode takeWrite}) and writes it with one call; then back to the end of the line if
   * more was queued meanwhile. Writes never overlap. When the queue is closed
   * and drained, or the connection fails, it closes the wire.
   *
   * Not an async function: the scheduler reports the write's end
   * ({@linkcode Channel._written}), so a turn makes no promise or closure of
   * its own.
   */
  _turn(scheduler: WriteScheduler): void {
    let data: Uint8Array | undefined;
    try {
      data = this.#isClosed() ? undefined : takeWrite(this, this.#queue);
      if (data === undefined) return this.#endTurn(scheduler, !this._reads());
      // A flush of frames the transport does not carry (pkg drops op 8) writes nothing.
      if (data.length === 0) return this._written(scheduler, true);
      scheduler.settle(this, this.wire.write(data));
    } catch {
      // A wire that failed to encode or to start the write: the same as a failed write.
      this.#endTurn(scheduler, true);
    }
  }

  /**
   * @internal The turn's write completed (`ok`) or failed (the peer went
   * away); `refused`: the socket took only part of it at first.
   */
  _written(scheduler: WriteScheduler, ok: boolean, refused = false): void {
    // Failed: the reader sees the close and cleans up.
    if (!ok) return this.#endTurn(scheduler, true);
    // Only a run of refused writes adds up: one the socket took whole shows the peer reads.
    if (refused) this._refusedMs += performance.now() - this._turnAt;
    else this._refusedMs = 0;
    this._turnAt = -1;
    this.#wakeReader();
    if (this.queued > 0 && !this.#isClosed()) {
      scheduler.done(this);
      scheduler.enqueue(this);
      return;
    }
    // Drained while closing: op 6 went out, and the wire closes.
    this.#endTurn(scheduler, !this._reads());
  }

  /** The turn is over; `end`: the wire closes (drained while closing, or failed). */
  #endTurn(scheduler: WriteScheduler, end: boolean): void {
    // Going idle: a queue that grew under pushes stays until the hub trims it at a heartbeat.
    if (this.#queue?.release(true)) this.#queue = undefined;
    this._turnAt = -1;
    scheduler.done(this);
    this.#flushing = false;
    if (end || this.#isClosed()) this.abort();
    else this._log?._park(this);
  }

  // A method, not an inline comparison: the state changes across the awaits above.
  #isClosed(): boolean {
    return this.#state === "closed";
  }
}
