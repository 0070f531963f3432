/**
 * The history of a {@linkcode RedisCluster}'s streams, kept in Redis: what
 * the hub asks when an opted-in client joins, and what a node reads to fill
 * a gap. Redis orders the streams (see redis_stream_scripts.ts), so the hub
 * never stamps a push itself.
 *
 * @module
 */
import type {
  HistoryLimits,
  StreamAnswer,
  StreamEntry,
  StreamHistory,
  StreamQuery,
  StreamStamp,
} from "../server/streams.ts";
import { RedisConnectionError } from "./redis_client.ts";
import type { RedisLink } from "./redis_link.ts";
import { randomEpoch, READ_SCRIPT, RedisScript } from "./redis_stream_scripts.ts";
import type { RedisArg, RedisReply } from "./resp.ts";
import { text, within } from "./_util.ts";

/** How long a stream's position outlives its last use, at least: a day. */
const _POSITION_TTL = 86_400_000;
/** How long `answer` waits for Redis before it gives up. */
const _ANSWER_TIMEOUT = 5_000;

/**
 * A kept push as Redis holds it: its place, op, body and when Redis took it.
 *
 * @example
 * ```ts
 * import type { KeptPush } from "./redis_history.ts";
 * const kept: KeptPush = { offset: 1, op: 1000, body: new Uint8Array(), at: 0 };
 * console.log(kept.offset); // 1
 * ```
 */
export interface KeptPush extends StreamEntry {
  /** Redis's time when the push was ordered, in ms since the epoch. */
  readonly at: number;
}

/**
 * What {@linkcode RedisHistory.read} found for one stream.
 *
 * @example
 * ```ts
 * import type { StreamRead } from "./redis_history.ts";
 * const read: StreamRead = { epoch: 0, top: 0, entries: [] };
 * console.log(read.epoch); // 0: the stream has no position in Redis
 * ```
 */
export interface StreamRead {
  /** The stream's epoch; 0 when Redis has no position for it. */
  readonly epoch: number;
  /** Its last offset. */
  readonly top: number;
  /** The entries asked for that Redis still keeps, in order. */
  readonly entries: readonly KeptPush[];
}

/**
 * One stream to read: after which offset of which epoch, up to which offset.
 *
 * @example
 * ```ts
 * import type { ReadQuery } from "./redis_history.ts";
 * const query: ReadQuery = { stream: "room:live://1", from: { epoch: 9, offset: 4 }, to: 7 };
 * console.log(query.to); // 7
 * ```
 */
export interface ReadQuery {
  readonly stream: string;
  /** The last push held; without it only the position is read. */
  readonly from?: StreamStamp;
  /** The last offset wanted; default the top. */
  readonly to?: number;
}

/**
 * A {@linkcode StreamHistory} in Redis. `append` gives no stamp: Redis
 * stamps every push when it is published (the hub must not). `answer` reads
 * each stream's position and the entries after the client's offset in one
 * atomic script, giving a stream never seen a position (so a joining client
 * learns its epoch); it rejects with {@linkcode RedisConnectionError} when
 * Redis is away or does not answer within 5 seconds.
 *
 * @example
 * ```ts ignore
 * import { RedisHistory } from "./redis_history.ts";
 * declare const link: import("./redis_link.ts").RedisLink;
 * const history = new RedisHistory(link, { size: 1000, ttl: 120_000 });
 * const [answer] = await history.answer([{ stream: "all", from: { epoch: 7, offset: 3 } }]);
 * console.log(answer!.recovered);
 * ```
 */
export class RedisHistory implements StreamHistory {
  /** Pushes kept per stream and for how long. */
  readonly limits: Readonly<HistoryLimits>;
  /** How long a stream's position outlives its last use, in ms. */
  readonly positionTtl: number;
  /**
   * Told each position an answer gives, before the hub reads the answer: the
   * node's stream order takes it as where a stream it had no record of stands.
   */
  onAnswer: ((stream: string, epoch: number, top: number) => void) | undefined;
  #link: RedisLink;
  #script = new RedisScript(READ_SCRIPT);

  /**
   * @param link Commands and key names.
   * @param limits Pushes kept per stream and for how long.
   * @throws {RangeError} When a limit is not positive.
   */
  constructor(link: RedisLink, limits: HistoryLimits) {
    const { size, ttl } = limits;
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new RangeError(`History size must be a positive integer: ${size}`);
    }
    if (!(ttl > 0)) throw new RangeError(`History ttl must be a positive number: ${ttl}`);
    this.#link = link;
    this.limits = { size, ttl: Math.ceil(ttl) };
    this.positionTtl = Math.max(_POSITION_TTL, this.limits.ttl);
  }

  /** Always undefined: Redis orders the streams when pushes are published. */
  append(_stream: string, _op: number, _body: Uint8Array): undefined {
    return undefined;
  }

  /**
   * Where each stream stands, and what followed each client's position
   * when Redis still keeps all of it within the ttl.
   *
   * @throws {RedisConnectionError} When Redis is away or slower than 5 seconds.
   */
  async answer(queries: readonly StreamQuery[]): Promise<StreamAnswer[]> {
    if (queries.length === 0) return [];
    // A late reply still settles; nobody waits for it.
    const read = await within(this.#read(queries, true), _ANSWER_TIMEOUT);
    if (read === undefined) {
      throw new RedisConnectionError(
        `Redis did not answer the history within ${_ANSWER_TIMEOUT} ms`,
      );
    }
    const { now, reads } = read;
    const oldest = now - this.limits.ttl;
    const answers = queries.map((query, i) => _answer(query, reads[i]!, oldest));
    for (const a of answers) this.onAnswer?.(a.stream, a.epoch, a.offset);
    return answers;
  }

  /**
   * Reads streams without giving them a position: their epoch (0 for
   * none), top and the entries asked for, of the epoch asked for only.
   *
   * @throws {RedisConnectionError} When Redis is away.
   * @throws {RedisError} When the script fails.
   */
  async read(queries: readonly ReadQuery[]): Promise<StreamRead[]> {
    if (queries.length === 0) return [];
    return (await this.#read(queries, false)).reads;
  }

  async #read(
    queries: readonly ReadQuery[],
    create: boolean,
  ): Promise<{ now: number; reads: StreamRead[] }> {
    const names = this.#link.keys;
    const keys: RedisArg[] = [];
    const args: RedisArg[] = [create ? "1" : "0", randomEpoch(), this.positionTtl];
    for (const { stream, from, to } of queries) {
      keys.push(names.position(stream), names.history(stream));
      args.push(from === undefined ? "" : String(from.epoch));
      args.push(from === undefined ? "" : String(from.offset));
      args.push(to === undefined ? "" : String(to));
    }
    const reply = await this.#script.run(this.#link.client, keys, args);
    if (!Array.isArray(reply) || reply.length !== queries.length + 1) {
      throw new TypeError("History script answered an unexpected shape");
    }
    return { now: _number(reply[0]), reads: reply.slice(1).map(_read) };
  }
}

function _answer(query: StreamQuery, read: StreamRead, oldest: number): StreamAnswer {
  const { epoch, top, entries } = read;
  const base = { stream: query.stream, epoch, offset: top };
  const from = query.from;
  if (from === undefined) return { ...base, entries: [] };
  if (from.epoch !== epoch || from.offset > top) {
    return { ...base, recovered: false, reason: "epoch", entries: [] };
  }
  if (from.offset === top) return { ...base, recovered: true, entries: [] };
  // Trimming only ever takes the oldest, so the first and the count say it is whole.
  const first = entries[0];
  if (
    first === undefined || first.offset !== from.offset + 1 ||
    entries.length !== top - from.offset || first.at <= oldest
  ) {
    return { ...base, recovered: false, reason: "window", entries: [] };
  }
  return {
    ...base,
    recovered: true,
    entries: entries.map(({ offset, op, body }) => ({ offset, op, body })),
  };
}

function _read(reply: RedisReply): StreamRead {
  if (!Array.isArray(reply) || reply.length !== 3 || !Array.isArray(reply[2])) {
    throw new TypeError("History script answered an unexpected stream");
  }
  return { epoch: _number(reply[0]), top: _number(reply[1]), entries: reply[2].map(_entry) };
}

/** One XRANGE entry: [id, [field, value, ...]]. */
function _entry(reply: RedisReply): KeptPush {
  if (!Array.isArray(reply) || !(reply[0] instanceof Uint8Array) || !Array.isArray(reply[1])) {
    throw new TypeError("History entry has an unexpected shape");
  }
  const id = text.decode(reply[0]);
  const offset = Number(id.slice(0, id.indexOf("-")));
  let op = 0;
  let body: Uint8Array = new Uint8Array();
  let at = 0;
  const fields = reply[1];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (!(name instanceof Uint8Array) || !(value instanceof Uint8Array)) continue;
    switch (name[0]) {
      case 0x6f: // o
        op = Number(text.decode(value));
        break;
      case 0x62: // b
        body = value;
        break;
      case 0x74: // t
        at = Number(text.decode(value));
    }
  }
  return { offset, op, body, at };
}

function _number(reply: RedisReply | undefined): number {
  if (typeof reply === "number") return reply;
  if (typeof reply === "bigint") return Number(reply);
  if (reply instanceof Uint8Array) return Number(text.decode(reply));
  throw new TypeError(`History script answered a non-number: ${String(reply)}`);
}
