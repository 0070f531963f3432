/**
 * Where an opted-in connection's streams stand: the op-8 answer at auth and
 * the replay that follows it, and the op-13 answer of a room change
 * (docs/protocol.md, sections 8.3 and 8.5). The history may answer at once
 * or later; meanwhile the connection is registered and holds its pushes,
 * and the answer's replay covers those it drops.
 *
 * @module
 */

import { Op } from "../protocol/op.ts";
import { encodeStreamPush, StreamKind, type StreamKindCode } from "../protocol/stream_push.ts";
import type { Logger } from "../log.ts";
import { isThenable } from "./_util.ts";
import type { Channel } from "./channel.ts";
import { HeldPushes } from "./held_pushes.ts";
import { StreamPositions } from "./stream_positions.ts";
import type { CometStats } from "./hub_stats.ts";
import type { RecoverAsk } from "./recover_ask.ts";
import {
  ALL_STREAM,
  midStream,
  roomStream,
  type StreamAnswer,
  type StreamHistory,
  type StreamQuery,
  type StreamStamp,
} from "./streams.ts";

/** The streams asked about at auth: the queries, each one's kind, and a room asked for in vain. */
interface _Plan {
  readonly queries: StreamQuery[];
  readonly kinds: StreamKindCode[];
  readonly room: string;
  /** The client named another room than the one it was put in. */
  readonly otherRoom: boolean;
}

/** One stream in op 8's body. */
interface _Entry {
  id?: string;
  epoch: number;
  offset: number;
  recovered?: boolean;
  reason?: string;
}

const _NO_STREAMS = '{"streams":{}}';
const _NAMES = ["", "room", "mid", "all"] as const;

function _plan(ask: RecoverAsk, room: string, mid: number): _Plan {
  const queries: StreamQuery[] = [];
  const kinds: StreamKindCode[] = [];
  const otherRoom = ask.room !== undefined && room !== "" && ask.room.id !== room;
  if (room !== "") {
    const from = ask.room !== undefined && !otherRoom ? ask.room : undefined;
    queries.push(_query(roomStream(room), from));
    kinds.push(StreamKind.Room);
  }
  queries.push(_query(midStream(mid), ask.mid));
  kinds.push(StreamKind.Mid);
  queries.push(_query(ALL_STREAM, ask.all));
  kinds.push(StreamKind.All);
  return { queries, kinds, room, otherRoom };
}

function _query(stream: string, from: StreamStamp | undefined): StreamQuery {
  return from === undefined
    ? { stream }
    : { stream, from: { epoch: from.epoch, offset: from.offset } };
}

/** The answers, checked against the queries: a broken history must not break the wire. */
function _checked(answers: unknown, count: number): StreamAnswer[] {
  if (!Array.isArray(answers) || answers.length !== count) {
    throw new TypeError(
      `History answered ${Array.isArray(answers) ? answers.length : 0} of ${count} streams`,
    );
  }
  return answers as StreamAnswer[];
}

/**
 * Answers opted-in connections where their streams stand; see the module doc.
 *
 * @example
 * ```ts ignore
 * import { Recovery } from "./recovery.ts";
 * const recovery = new Recovery(history, stats, logger);
 * recovery.open(channel, { all: { epoch: 7, offset: 3 } }, "", 9, 1, 1, () => register(channel));
 * ```
 */
export class Recovery {
  #history: StreamHistory | undefined;
  #stats: CometStats;
  #logger: Logger;

  /** Answers through `history`; undefined: streams are off, and clients are told so. */
  constructor(history: StreamHistory | undefined, stats: CometStats, logger: Logger) {
    this.#history = history;
    this.#stats = stats;
    this.#logger = logger;
  }

  /**
   * Registers an opted-in connection (`register`) and answers its auth frame
   * (`seq`, `ver`) with op 8 and the replay. With an answer at once, op 8
   * and the replay are queued before it is registered, so live pushes
   * follow them; with a later one, it is registered at once and holds its
   * pushes until then.
   *
   * @returns Whether it was registered: at once, or once the history answered.
   */
  open(
    ch: Channel,
    ask: RecoverAsk,
    session: { room: string; mid: number },
    seq: number,
    ver: number,
    register: () => void,
  ): boolean | Promise<boolean> {
    ch._optedIn = true;
    const history = this.#history;
    if (history === undefined) {
      register();
      ch.reply(Op.AuthReply, _NO_STREAMS, seq, ver);
      return true;
    }
    ch._streamed = true;
    const plan = _plan(ask, session.room, session.mid);
    let answer: StreamAnswer[] | Promise<StreamAnswer[]>;
    try {
      answer = history.answer(plan.queries);
      if (!isThenable(answer)) {
        this.#answered(ch, plan, _checked(answer, plan.queries.length), seq, ver);
      }
    } catch (err) {
      this.#failed(ch, err);
      return false;
    }
    if (!isThenable(answer)) {
      register();
      return true;
    }
    // Held from before it can receive any push: the answer may cover some of them.
    ch._held = new HeldPushes(ch._capacity);
    register();
    return Promise.resolve(answer).then((answers) => {
      if (!ch._reads()) return true;
      try {
        this.#answered(ch, plan, _checked(answers, plan.queries.length), seq, ver);
        _release(ch);
      } catch (err) {
        this.#failed(ch, err);
      }
      return true;
    }, (err) => {
      this.#failed(ch, err);
      return true;
    });
  }

  /**
   * Answers op 12 of an opted-in connection, already moved to `room`, with
   * op 13 carrying the room's position (section 8.5). Pushes to the new
   * room wait behind op 13 while the history answers.
   *
   * @returns A promise while the history answers; the next client frame waits for it.
   */
  changedRoom(ch: Channel, room: string, seq: number, ver: number): Promise<void> | undefined {
    const history = this.#history;
    if (room === "" || history === undefined || !ch._streamed) {
      ch.reply(Op.ChangeRoomReply, JSON.stringify({ id: room }), seq, ver);
      return;
    }
    let answer: StreamAnswer[] | Promise<StreamAnswer[]>;
    try {
      answer = history.answer([{ stream: roomStream(room) }]);
      if (!isThenable(answer)) return void this.#moved(ch, room, _checked(answer, 1)[0]!, seq, ver);
    } catch (err) {
      return void this.#failed(ch, err);
    }
    ch._held ??= new HeldPushes(ch._capacity);
    return Promise.resolve(answer).then((answers) => {
      if (!ch._reads()) return;
      try {
        this.#moved(ch, room, _checked(answers, 1)[0]!, seq, ver);
        _release(ch);
      } catch (err) {
        this.#failed(ch, err);
      }
    }, (err) => this.#failed(ch, err));
  }

  /** Queues op 13 with the room's position, past which the room's pushes pass. */
  #moved(ch: Channel, room: string, a: StreamAnswer, seq: number, ver: number): void {
    const body = JSON.stringify({ id: room, epoch: a.epoch, offset: a.offset });
    ch.reply(Op.ChangeRoomReply, body, seq, ver);
    ch._positions?.set(StreamKind.Room, a);
  }

  /**
   * Queues op 8 and the replay of `answers`; from here on each stream's
   * pushes pass the connection once, past the positions answered (those
   * held meanwhile too).
   */
  #answered(ch: Channel, plan: _Plan, answers: StreamAnswer[], seq: number, ver: number): void {
    const recoveries = this.#stats.recoveries;
    const streams: Record<string, _Entry> = {};
    const positions = ch._positions ??= new StreamPositions();
    for (let i = 0; i < answers.length; i++) {
      const a = answers[i]!;
      const kind = plan.kinds[i]!;
      const entry: _Entry = kind === StreamKind.Room
        ? { id: plan.room, epoch: a.epoch, offset: a.offset }
        : { epoch: a.epoch, offset: a.offset };
      if (kind === StreamKind.Room && plan.otherRoom) {
        entry.recovered = false;
        entry.reason = "room";
        recoveries.room++;
      } else if (plan.queries[i]!.from !== undefined) {
        entry.recovered = a.recovered === true;
        if (entry.recovered) recoveries.recovered++;
        else recoveries[entry.reason = a.reason === "window" ? "window" : "epoch"]++;
      }
      streams[_NAMES[kind]] = entry;
      positions.set(kind, a);
    }
    ch.reply(Op.AuthReply, JSON.stringify({ streams }), seq, ver);
    for (let i = 0; i < answers.length; i++) {
      const a = answers[i]!;
      if (a.recovered !== true || plan.queries[i]!.from === undefined) continue;
      const kind = plan.kinds[i]!;
      for (const e of a.entries) {
        ch._pushReply(encodeStreamPush(kind, a.epoch, e.offset, e.op, e.body));
      }
    }
  }

  /** The history failed: the connection closes, as it cannot be told where it stands. */
  #failed(ch: Channel, err: unknown): void {
    this.#stats.recoveryFailed++;
    const message = err instanceof Error ? err.message : String(err);
    this.#logger.warn("History failed to answer", { key: ch.key, error: message });
    ch._held = undefined;
    ch.close(`recovery failed: ${message}`);
  }
}

/**
 * Queues what `ch` held while its streams were asked, but the op-18 frames
 * at or before the answered position of their stream (the replay has them,
 * or they came before the client's position).
 */
function _release(ch: Channel): void {
  const held = ch._held;
  ch._held = undefined;
  if (held === undefined) return;
  // Queued as they came; the positions just answered drop every held push the answer covered.
  const { frames, kinds } = held;
  for (let i = 0; i < frames.length; i++) {
    const kind = kinds[i]!;
    if (kind === "alone") ch.push(frames[i]!);
    else ch.pushShared(frames[i]!, kind);
  }
}
