/**
 * The contract of streams and history (docs/protocol.md, section 8): what a
 * push's stamp is, what a client asks when it reconnects, and what answers
 * it. A hub stamps the pushes that reach it unstamped through its
 * {@linkcode StreamHistory}, and asks it where each stream stands when an
 * opted-in client joins. Where the order is decided (this hub, the worker
 * that owns the stream, Redis) is the history's business, not the hub's.
 *
 * @module
 */

/**
 * A push's place in its stream.
 *
 * @example
 * ```ts
 * import type { StreamStamp } from "./streams.ts";
 * const stamp: StreamStamp = { epoch: 305419896, offset: 1 };
 * console.log(stamp.offset); // 1
 * ```
 */
export interface StreamStamp {
  /** The stream's epoch, 1 to 2^32 − 1; changes when its history is lost. */
  readonly epoch: number;
  /** The push's offset: 1 for the stream's first, one more for each next. */
  readonly offset: number;
}

/**
 * The name of a room's stream.
 *
 * @example
 * ```ts
 * import { roomStream } from "./streams.ts";
 * console.log(roomStream("live://1")); // "room:live://1"
 * ```
 */
export function roomStream(room: string): string {
  return "room:" + room;
}

/**
 * The name of a user's stream.
 *
 * @example
 * ```ts
 * import { midStream } from "./streams.ts";
 * console.log(midStream(7)); // "mid:7"
 * ```
 */
export function midStream(mid: number): string {
  return "mid:" + mid;
}

/**
 * The name of the stream of pushes to everyone.
 *
 * @example
 * ```ts
 * import { ALL_STREAM } from "./streams.ts";
 * console.log(ALL_STREAM); // "all"
 * ```
 */
export const ALL_STREAM = "all";

/**
 * One question about a stream: where it stands now, and, with `from`, what
 * came after the client's position.
 *
 * @example
 * ```ts
 * import type { StreamQuery } from "./streams.ts";
 * const query: StreamQuery = { stream: "mid:7", from: { epoch: 9, offset: 41 } };
 * console.log(query.stream); // "mid:7"
 * ```
 */
export interface StreamQuery {
  /** The stream's name: {@linkcode roomStream}, {@linkcode midStream} or {@linkcode ALL_STREAM}. */
  readonly stream: string;
  /** The last push the client holds; epoch 0 when it never learned one. */
  readonly from?: StreamStamp;
}

/**
 * A push kept in a stream's history.
 *
 * @example
 * ```ts
 * import type { StreamEntry } from "./streams.ts";
 * const entry: StreamEntry = { offset: 42, op: 1000, body: new Uint8Array() };
 * console.log(entry.op); // 1000
 * ```
 */
export interface StreamEntry {
  /** Its offset in the stream. */
  readonly offset: number;
  /** The push's business op. */
  readonly op: number;
  /** The pushed bytes. */
  readonly body: Uint8Array;
}

/**
 * Why a stream was not recovered: another epoch, or a missed push no longer kept.
 *
 * @example
 * ```ts
 * import type { NotRecovered } from "./streams.ts";
 * const reason: NotRecovered = "window";
 * console.log(reason); // "window"
 * ```
 */
export type NotRecovered = "epoch" | "window";

/**
 * Where a stream stands, and what follows the client's position when it
 * asked and the history holds all of it.
 *
 * @example
 * ```ts
 * import type { StreamAnswer } from "./streams.ts";
 * const answer: StreamAnswer = { stream: "all", epoch: 3, offset: 0, entries: [] };
 * console.log(answer.offset); // 0: nothing pushed to everyone yet
 * ```
 */
export interface StreamAnswer {
  /** The stream asked about. */
  readonly stream: string;
  /** Its epoch now. */
  readonly epoch: number;
  /** The offset of the stream's last push now (0: none in this epoch). */
  readonly offset: number;
  /** Present when the query had `from`: whether `entries` is everything after it. */
  readonly recovered?: boolean;
  /** Why not, when `recovered` is false. */
  readonly reason?: NotRecovered;
  /** Offsets `from.offset + 1` to `offset`, in order, when recovered; else empty. */
  readonly entries: readonly StreamEntry[];
}

/**
 * A hub's history: it stamps pushes that reach the hub unstamped, and answers
 * where streams stand. The answer may come later (another worker, Redis); the
 * hub holds a joining client's pushes meanwhile and drops those the answer
 * covers.
 *
 * @example
 * ```ts
 * import type { StreamHistory } from "./streams.ts";
 *
 * function top(history: StreamHistory) {
 *   return history.answer([{ stream: "all" }]);
 * }
 * ```
 */
export interface StreamHistory {
  /**
   * Gives the next offset of `stream` to a push and keeps it; `undefined`
   * when this history does not order `stream` (the push then goes out
   * without a stamp).
   */
  append(stream: string, op: number, body: Uint8Array): StreamStamp | undefined;
  /** One answer per query, in the queries' order. */
  answer(queries: readonly StreamQuery[]): StreamAnswer[] | Promise<StreamAnswer[]>;
  /** What it holds, for metrics; a history kept elsewhere (Redis) does not tell. */
  figures?(): HistoryFigures;
}

/**
 * What a history holds, for metrics.
 *
 * @example
 * ```ts
 * import type { HistoryFigures } from "./streams.ts";
 * const figures: HistoryFigures = { streams: 0, entries: 0, bytes: 0 };
 * console.log(figures.entries); // 0
 * ```
 */
export interface HistoryFigures {
  /** Streams known (with a position), kept or not. */
  streams: number;
  /** Pushes kept. */
  entries: number;
  /** Bytes of the pushes kept. */
  bytes: number;
  /** What the history counts against its memory cap: pushes, names and bookkeeping. */
  held?: number;
  /** Pushes dropped before their time to keep under the memory cap, since start. */
  evictedPushes?: number;
  /** Stream positions forgotten to keep under the memory cap, since start. */
  evictedStreams?: number;
}

/**
 * How much history each stream keeps: `--history-size` and `--history-ttl`.
 *
 * @example
 * ```ts
 * import type { HistoryLimits } from "./streams.ts";
 * const limits: HistoryLimits = { size: 1000, ttl: 120_000 };
 * console.log(limits.ttl); // 120000 ms
 * ```
 */
export interface HistoryLimits {
  /** Pushes kept per stream, the newest; at least 1 (0 turns streams off before this is made). */
  size: number;
  /** Milliseconds a push is kept. */
  ttl: number;
  /**
   * Bytes a history in memory may hold in all (`--history-memory`); past it
   * the least recently used streams lose their pushes first. Absent: no cap.
   * Redis keeps its own account (its `maxmemory`).
   */
  memory?: number;
}
