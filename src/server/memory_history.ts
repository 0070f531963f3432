/**
 * Streams kept in this isolate's memory: the history of one hub without a
 * cluster, or of the streams one worker orders for the others.
 *
 * @module
 */

import type { LogFields } from "../log.ts";
import type {
  HistoryFigures,
  StreamAnswer,
  StreamEntry,
  StreamHistory,
  StreamQuery,
  StreamStamp,
} from "./streams.ts";

/**
 * Options of {@linkcode MemoryHistory}.
 *
 * @example
 * ```ts
 * import type { MemoryHistoryOptions } from "./memory_history.ts";
 * const options: MemoryHistoryOptions = { size: 1000, ttl: 120_000 };
 * console.log(options.size); // 1000
 * ```
 */
export interface MemoryHistoryOptions {
  /** Pushes kept per stream, the newest; at least 1. */
  size: number;
  /** Milliseconds a push is kept. */
  ttl: number;
  /**
   * Bytes the history may hold in all, as {@linkcode MemoryHistory.figures}
   * counts them in `held`; past it, the least recently used streams lose
   * their pushes, then their positions. Default: no cap.
   */
  memory?: number;
  /** Where the first eviction, and one a minute after it, is told. */
  warn?: (message: string, fields: LogFields) => void;
  /**
   * Milliseconds a stream's position (epoch and last offset) outlives its
   * last use, so that a client idle in a quiet stream still resumes; default
   * one day. Past it, the stream starts again under a new epoch.
   */
  positionTtl?: number;
  /** The clock, in milliseconds; `Date.now` by default. */
  now?: () => number;
}

interface _Kept extends StreamEntry {
  readonly at: number;
}

interface _Stream {
  readonly epoch: number;
  top: number;
  used: number;
  /** Oldest first; `head` is the first still kept. */
  kept: _Kept[];
  head: number;
}

const _DAY = 86_400_000;
const _SWEEP_EVERY = 1000;
// What a kept push and a known stream cost beyond the pushed bytes and the
// stream's name, about (V8 objects, the array slot, the map entry): counted
// so that a cap holds against many small pushes and many quiet streams too.
const _ENTRY_COST = 96;
const _STREAM_COST = 224;
// Past the cap, evict down to this share of it, so that one walk makes room
// for many appends.
const _LOW_WATER = 0.9;
const _WARN_EVERY = 60_000;
// Streams one sweep moves to the idle, and forgets, at most: a million users gone quiet
// at once cost a few milliseconds a second for a minute, not one stall of most of a second.
const _SWEEP_MOST = 10_000;

function _epoch(): number {
  const one = new Uint32Array(1);
  do crypto.getRandomValues(one); while (one[0] === 0);
  return one[0]!;
}

/**
 * A {@linkcode StreamHistory} in memory: it orders every stream it is given,
 * keeps each one's last `size` pushes for `ttl` milliseconds, and answers at
 * once. Each stream's epoch is random, chosen when the stream is first used.
 *
 * @example
 * ```ts
 * import { MemoryHistory } from "./memory_history.ts";
 *
 * const history = new MemoryHistory({ size: 100, ttl: 60_000 });
 * const body = new TextEncoder().encode("hi");
 * const stamp = history.append("room:live://1", 1000, body)!;
 * const [answer] = history.answer([{ stream: "room:live://1", from: { epoch: stamp.epoch, offset: 0 } }]);
 * console.log(answer!.recovered, answer!.entries.length); // true 1
 * ```
 */
export class MemoryHistory implements StreamHistory {
  #size: number;
  #ttl: number;
  #positionTtl: number;
  #now: () => number;
  // Streams with pushes kept or used within the ttl, in order of last use: the sweep walks
  // the stalest first and stops at a fresh one.
  #streams = new Map<string, _Stream>();
  // Streams holding only their position (every push gone), about in order of last use: a
  // million quiet users' positions are walked once a day, not at every sweep or eviction.
  #idle = new Map<string, _Stream>();
  #entries = 0;
  #bytes = 0;
  /** Names' lengths and per-stream costs, for `held`. */
  #streamBytes = 0;
  #swept = 0;
  #memory: number;
  #warn: ((message: string, fields: LogFields) => void) | undefined;
  #evictedPushes = 0;
  #evictedStreams = 0;
  #warnedAt = -Infinity;
  #warnedPushes = 0;
  #warnedStreams = 0;

  /**
   * Makes an empty history.
   *
   * @throws {RangeError} When `size` is not a positive integer, `ttl` not
   * positive, `memory` not positive, or `positionTtl` shorter than `ttl`.
   */
  constructor(options: MemoryHistoryOptions) {
    const { size, ttl, memory = Infinity, warn, positionTtl = _DAY, now = Date.now } = options;
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new RangeError(`History size must be a positive integer: ${size}`);
    }
    if (!(ttl > 0)) throw new RangeError(`History ttl must be a positive number: ${ttl}`);
    if (!(memory > 0)) {
      throw new RangeError(`History memory must be a positive number of bytes: ${memory}`);
    }
    if (!(positionTtl >= ttl)) {
      throw new RangeError(`History positionTtl must be at least its ttl: ${positionTtl}`);
    }
    this.#size = size;
    this.#ttl = ttl;
    this.#positionTtl = positionTtl;
    this.#now = now;
    this.#memory = memory;
    this.#warn = warn;
  }

  /** Streams, pushes and bytes held now, and what the memory cap evicted since start. */
  figures(): HistoryFigures {
    return {
      streams: this.#streams.size + this.#idle.size,
      entries: this.#entries,
      bytes: this.#bytes,
      held: this.#held(),
      evictedPushes: this.#evictedPushes,
      evictedStreams: this.#evictedStreams,
    };
  }

  append(stream: string, op: number, body: Uint8Array): StreamStamp {
    const now = this.#now();
    const s = this.#use(stream, now);
    const offset = ++s.top;
    s.kept.push({ offset, op, body, at: now });
    this.#entries++;
    this.#bytes += body.length;
    if (s.kept.length - s.head > this.#size) this.#drop(s, 1);
    this.#expire(s, now);
    if (this.#held() > this.#memory) this.#evict(s, now);
    return { epoch: s.epoch, offset };
  }

  answer(queries: readonly StreamQuery[]): StreamAnswer[] {
    const now = this.#now();
    const answers: StreamAnswer[] = [];
    for (const query of queries) answers.push(this.#answer(query, now));
    // Asking makes a position for a stream not seen before: it counts too.
    if (this.#held() > this.#memory) {
      const last = this.#streams.get(queries.at(-1)?.stream ?? "");
      if (last !== undefined) this.#evict(last, now);
    }
    return answers;
  }

  #answer(query: StreamQuery, now: number): StreamAnswer {
    const s = this.#use(query.stream, now);
    this.#expire(s, now);
    const { epoch, top } = s;
    const base = { stream: query.stream, epoch, offset: top };
    const from = query.from;
    if (from === undefined) return { ...base, entries: [] };
    // A position past the stream's end cannot be of this epoch's history.
    if (from.epoch !== epoch || from.offset > top) {
      return { ...base, recovered: false, reason: "epoch", entries: [] };
    }
    const first = top - (s.kept.length - s.head) + 1;
    if (from.offset + 1 < first) {
      return { ...base, recovered: false, reason: "window", entries: [] };
    }
    const entries: StreamEntry[] = [];
    for (let i = s.head + (from.offset + 1 - first); i < s.kept.length; i++) {
      const { offset, op, body } = s.kept[i]!;
      entries.push({ offset, op, body });
    }
    return { ...base, recovered: true, entries };
  }

  #use(stream: string, now: number): _Stream {
    let s = this.#streams.get(stream);
    if (s !== undefined) this.#streams.delete(stream);
    else if ((s = this.#idle.get(stream)) !== undefined) this.#idle.delete(stream);
    else {
      s = { epoch: _epoch(), top: 0, used: now, kept: [], head: 0 };
      this.#streamBytes += _STREAM_COST + stream.length;
    }
    s.used = now;
    this.#streams.set(stream, s);
    if (now - this.#swept >= _SWEEP_EVERY) this.#sweep(now);
    return s;
  }

  #expire(s: _Stream, now: number): void {
    const oldest = now - this.#ttl;
    let n = 0;
    for (let i = s.head; i < s.kept.length && s.kept[i]!.at <= oldest; i++) n++;
    if (n > 0) this.#drop(s, n);
  }

  #drop(s: _Stream, n: number): void {
    const kept = s.kept;
    for (let i = s.head; i < s.head + n; i++) {
      this.#bytes -= kept[i]!.body.length;
      // Let go of the bytes now; the slot goes when the array is compacted.
      (kept as (_Kept | undefined)[])[i] = undefined;
    }
    this.#entries -= n;
    s.head += n;
    if (s.head === kept.length) {
      s.kept = [];
      s.head = 0;
    } else if (s.head * 2 >= kept.length) {
      s.kept = kept.slice(s.head);
      s.head = 0;
    }
  }

  #sweep(now: number): void {
    this.#swept = now;
    let moved = 0;
    for (const [name, s] of this.#streams) {
      // In order of last use: the first one used within the ttl ends the walk. One used
      // before it holds no push within the ttl either: its pushes all go, it goes idle.
      if (now - s.used < this.#ttl || moved++ === _SWEEP_MOST) break;
      this.#expire(s, now);
      this.#idle.set(name, s);
      this.#streams.delete(name);
    }
    let forgotten = 0;
    for (const [name, s] of this.#idle) {
      // Idle streams join in about the order of last use (an eviction may idle a fresher
      // one early, a busy sweep a staler one late): a position may outlive its ttl by as
      // much, and no stream is forgotten before its ttl.
      if (now - s.used < this.#positionTtl || forgotten++ === _SWEEP_MOST) break;
      this.#forget(this.#idle, name);
    }
  }

  #held(): number {
    return this.#bytes + this.#entries * _ENTRY_COST + this.#streamBytes;
  }

  #forget(streams: Map<string, _Stream>, name: string): void {
    streams.delete(name);
    this.#streamBytes -= _STREAM_COST + name.length;
  }

  /**
   * Makes room under the cap for `current`, the stream just appended to:
   * first the pushes of the least recently used other streams, then the
   * older pushes of `current` but its newest, and only when positions alone
   * are over, the least recently used positions (those streams start again
   * under a new epoch). A stream loses its oldest pushes, so a recovery is
   * refused for the window, never replayed in part.
   */
  #evict(current: _Stream, now: number): void {
    const target = this.#memory * _LOW_WATER;
    let pushes = 0;
    let streams = 0;
    // Streams emptied here stay in place (the sweep idles them past the ttl): moving each
    // costs a Map delete and set, ten times the check a later walk makes on it.
    for (const s of this.#streams.values()) {
      if (this.#held() <= target) break;
      if (s === current) continue;
      const n = s.kept.length - s.head;
      if (n > 0) {
        pushes += n;
        this.#drop(s, n);
      }
    }
    let over = this.#held() - target;
    let n = 0;
    for (let i = current.head; over > 0 && i < current.kept.length - 1; i++, n++) {
      over -= current.kept[i]!.body.length + _ENTRY_COST;
    }
    if (n > 0) {
      pushes += n;
      this.#drop(current, n);
    }
    // Here the walk above went through every other stream: positions alone are over. The
    // idle are the stalest; then the others, by last use.
    for (const streamsOf of [this.#idle, this.#streams]) {
      for (const [name, s] of streamsOf) {
        if (this.#held() <= target) break;
        if (s === current) continue;
        this.#forget(streamsOf, name);
        streams++;
      }
    }
    this.#evictedPushes += pushes;
    this.#evictedStreams += streams;
    this.#warnedPushes += pushes;
    this.#warnedStreams += streams;
    if (this.#warn !== undefined && now - this.#warnedAt >= _WARN_EVERY) {
      this.#warn(
        "History is at its memory cap: the least recently used streams lost their pushes (and positions) early",
        { memory: this.#memory, pushes: this.#warnedPushes, streams: this.#warnedStreams },
      );
      this.#warnedAt = now;
      this.#warnedPushes = 0;
      this.#warnedStreams = 0;
    }
  }
}
