import { encodeFrame } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import { BoundedQueue } from "./queue.ts";
import type { Timer } from "./timer_heap.ts";
import type { ConnInfo, Wire } from "./wire.ts";

/**
 * What happens when a connection's queue is full: `close` tells the client
 * with op 6 and disconnects it; `drop` (goim's behaviour) drops the message
 * and counts it.
 */
export type SlowPolicy = "close" | "drop";

/** Lifecycle of a {@linkcode Channel}. */
export type ChannelState = "handshake" | "open" | "closing" | "closed";

/** Hooks a {@linkcode Channel} reports to; implemented by the hub. */
export interface ChannelHooks {
  /** A message was dropped because the queue was full (`drop` policy). */
  dropped(channel: Channel): void;
  /** The queue filled under the `close` policy; the channel is closing. */
  slow(channel: Channel): void;
  /** The channel began a graceful close; `grace` bounds the final flush. */
  closing(channel: Channel, grace: number): void;
  /** A push was queued to a channel whose `_traced` is set; never called for others. */
  pushed?(channel: Channel, frame: Uint8Array): void;
}

const _encoder = new TextEncoder();

// Writers fill this between two awaits only, so every channel can share it.
const _batch: Uint8Array[] = [];

/**
 * One client connection: its identity (key, user, room, watched ops), its
 * outbound queue and its writer task. The hub pushes encoded frames in; the
 * writer drains everything queued and writes it with one `write`.
 *
 * Fields starting with `_` belong to the hub, buckets and rooms.
 */
export class Channel {
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
  /** @internal The channel's handshake, heartbeat or close deadline. */
  _timer: Timer<Channel> | undefined;
  /** @internal Heartbeat deadline in milliseconds. */
  _heartbeat = 0;
  /** @internal When the credentials expire, on the hub's timer clock; Infinity: never. */
  _expiresAt = Infinity;
  /** @internal Whether every step of this connection is logged (its mid is traced). */
  _traced = false;
  /** @internal Tokens left in the upstream rate bucket. */
  _upTokens = 0;
  /** @internal When the upstream bucket was last refilled, on the hub's timer clock. */
  _upAt = 0;
  /** @internal Why the connection is closing or closed; empty when the peer left. */
  _closeReason = "";

  #queue: BoundedQueue<Uint8Array>;
  #slow: SlowPolicy;
  #hooks: ChannelHooks;
  #closeGrace: number;
  #watch: Set<number> | undefined;
  #state: ChannelState = "handshake";
  #flushed: (() => void) | undefined;

  /**
   * Creates a channel in its handshake state; the hub does this per connection.
   *
   * @param wire The transport connection.
   * @param queueSize Frames queued at most before the slow policy applies.
   * @param slow The slow-consumer policy.
   * @param hooks Where drops and slow closes are reported.
   * @param closeGrace How long a graceful close may take to flush, in ms.
   */
  constructor(
    wire: Wire,
    queueSize: number,
    slow: SlowPolicy,
    hooks: ChannelHooks,
    closeGrace: number,
  ) {
    this.wire = wire;
    this.#queue = new BoundedQueue(queueSize);
    this.#slow = slow;
    this.#hooks = hooks;
    this.#closeGrace = closeGrace;
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

  /** Frames waiting for the writer. */
  get queued(): number {
    return this.#queue.length;
  }

  /** @internal Marks the channel authenticated. */
  _open(): void {
    if (this.#state === "handshake") this.#state = "open";
  }

  /** Whether a push of business op `op` to keys, mids or all reaches this connection. */
  watches(op: number): boolean {
    return this.#watch !== undefined && this.#watch.has(op);
  }

  /** Adds ops to the watched set. */
  watch(ops: Iterable<number>): void {
    for (const op of ops) (this.#watch ??= new Set()).add(op);
  }

  /** Removes ops from the watched set. */
  unwatch(ops: Iterable<number>): void {
    if (!this.#watch) return;
    for (const op of ops) this.#watch.delete(op);
    if (this.#watch.size === 0) this.#watch = undefined;
  }

  /** The watched ops, in no particular order. */
  watched(): number[] {
    return this.#watch ? [...this.#watch] : [];
  }

  /** Number of watched ops. */
  get watchCount(): number {
    return this.#watch?.size ?? 0;
  }

  /**
   * Queues an already encoded frame. Never blocks. When the queue is full the
   * slow-consumer policy applies.
   *
   * @returns Whether the frame was queued.
   */
  push(frame: Uint8Array): boolean {
    if (this.#queue.offer(frame)) {
      if (this._traced) this.#hooks.pushed?.(this, frame);
      return true;
    }
    if (this.#queue.closed) return false;
    if (this.#slow === "drop") {
      this.#hooks.dropped(this);
    } else {
      this.#hooks.slow(this);
      this.close("slow consumer");
    }
    return false;
  }

  /**
   * Encodes and queues one frame to this connection alone.
   *
   * @returns Whether the frame was queued.
   */
  send(op: number, body: Uint8Array | string = "", seq = 0, ver = 1): boolean {
    const bytes = typeof body === "string" ? _encoder.encode(body) : body;
    return this.push(encodeFrame(op, seq, bytes, ver));
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
    const bytes = typeof body === "string" ? _encoder.encode(body) : body;
    return this.#queue.force(encodeFrame(op, seq, bytes, ver));
  }

  /**
   * @internal Undefined while the queue has room; else a promise that
   * settles once the writer has flushed it (or the channel closed).
   */
  _writable(): Promise<void> | undefined {
    if (this.#queue.length < this.#queue.capacity || this.#queue.closed) return undefined;
    return new Promise<void>((resolve) => (this.#flushed = resolve));
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
    if (this.#state === "closing" || this.#state === "closed") return;
    this.#state = "closing";
    this._closeReason = reason;
    this.#queue.force(encodeFrame(Op.DisconnectReply, 0, _encoder.encode(reason)));
    this.#queue.close();
    this.#hooks.closing(this, this.#closeGrace);
  }

  /** Closes the connection at once, dropping anything queued. Idempotent. */
  abort(): void {
    this.#state = "closed";
    this.#queue.close();
    this.#queue.clear();
    this.wire.close();
    this.#wakeReader();
  }

  #wakeReader(): void {
    const wake = this.#flushed;
    if (wake) {
      this.#flushed = undefined;
      wake();
    }
  }

  /**
   * @internal The writer task: waits for frames, drains everything queued
   * into one buffer and writes it with one call. Ends when the queue is
   * closed and drained, or the connection fails; then closes the wire.
   */
  async _runWriter(): Promise<void> {
    const queue = this.#queue;
    try {
      for (;;) {
        if (queue.length === 0) {
          if (queue.closed) break;
          await queue.wait();
          continue;
        }
        const count = queue.length;
        let bytes = 0;
        for (let i = 0; i < count; i++) {
          const chunk = queue.shift()!;
          _batch[i] = chunk;
          bytes += chunk.length;
        }
        let data: Uint8Array;
        try {
          data = this.wire.encode(_batch, count, bytes);
        } finally {
          _batch.fill(undefined as unknown as Uint8Array, 0, count);
        }
        // A flush of frames the transport does not carry (pkg drops op 8) writes nothing.
        if (data.length > 0) await this.wire.write(data);
        this.#wakeReader();
      }
    } catch {
      // The peer went away mid-write; the reader sees the close and cleans up.
    } finally {
      this.abort();
    }
  }
}
