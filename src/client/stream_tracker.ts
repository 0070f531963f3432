/**
 * The goim client's side of stream recovery (docs/protocol.md, section 8.6):
 * the positions it holds, read from op 8, op 13 and op 18, and the losses it
 * tells the application about.
 *
 * @module
 */
import type { Frame } from "../protocol/frame.ts";
import { ProtocolError } from "../protocol/protocol_error.ts";
import { decodeStreamPush, type StreamPush } from "../protocol/stream_push.ts";
import { _asError, _decoder, _strictDecoder } from "./_util.ts";
import type {
  ClientFrame,
  RoomPosition,
  StreamLost,
  StreamLostReason,
  StreamName,
  StreamPosition,
  StreamPositions,
} from "./client_options.ts";

/** Stream names by op 18's kind code (1 room, 2 mid, 3 all). */
const _NAMES: readonly StreamName[] = ["room", "room", "mid", "all"];
const _REASONS: readonly string[] = ["epoch", "window", "room"];

type _Record = Record<string, unknown>;

/**
 * Holds a client's position per stream and checks each op 18 against it:
 * the next offset is delivered, an old one dropped, anything else is a
 * broken stream that is taken from there and reported.
 *
 * @example
 * ```ts
 * import { StreamTracker } from "./stream_tracker.ts";
 * import { encodeStreamPush, StreamKind } from "../protocol/stream_push.ts";
 *
 * const tracker = new StreamTracker(undefined, console.error);
 * tracker.authorized(new TextEncoder().encode('{"streams":{"all":{"epoch":7,"offset":0}}}'));
 * const frame = encodeStreamPush(StreamKind.All, 7, 1, 1000, new Uint8Array([1]));
 * const push = tracker.push({ ver: 1, op: 18, seq: 0, body: frame.subarray(16) });
 * console.log(push?.op, tracker.positions.all); // 1000 { epoch: 7, offset: 1 }
 * ```
 */
export class StreamTracker {
  #room: RoomPosition | undefined;
  #mid: StreamPosition | undefined;
  #all: StreamPosition | undefined;
  #roomId: string | undefined;
  #listeners = new Set<(lost: StreamLost) => void>();
  #report: (error: Error) => void;

  /**
   * @param initial Positions to recover from on the first connection.
   * @param report Gets what throwing listeners throw and malformed op-18 bodies.
   * @throws {TypeError} When a position is not of the right shape.
   * @throws {RangeError} When an epoch or offset is out of range.
   */
  constructor(initial: StreamPositions | undefined, report: (error: Error) => void) {
    this.#report = report;
    if (initial === undefined) return;
    if (typeof initial !== "object" || initial === null) {
      throw new TypeError(`Positions must be an object: ${_typeOf(initial)}`);
    }
    const { room, mid, all } = initial;
    if (room !== undefined) {
      if (typeof room?.id !== "string" || room.id === "") {
        throw new TypeError("Room position needs the room's id, a non-empty string");
      }
      this.#room = { id: room.id, ..._checked("room", room) };
    }
    if (mid !== undefined) this.#mid = _checked("mid", mid);
    if (all !== undefined) this.#all = _checked("all", all);
  }

  /** A copy of the positions held: what the next connection's `recover` names. */
  get positions(): StreamPositions {
    const out: StreamPositions = {};
    if (this.#room !== undefined) out.room = { ...this.#room };
    if (this.#mid !== undefined) out.mid = { ...this.#mid };
    if (this.#all !== undefined) out.all = { ...this.#all };
    return out;
  }

  /**
   * The room the server says this connection is in ("" none), from its op 8
   * or op 13; undefined while it has not said (a server without streams).
   */
  get roomId(): string | undefined {
    return this.#roomId;
  }

  /** Calls `listener` for each loss; returns a function that removes it. */
  onLost(listener: (lost: StreamLost) => void): () => void {
    if (typeof listener !== "function") throw new TypeError("Listener must be a function");
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** A new connection starts: the room it is in is not known yet. */
  connecting(): void {
    this.#roomId = undefined;
  }

  /**
   * Reads op 8's body: the position of each stream once the replay that
   * follows is read. A body that breaks section 8.3 is reported and read
   * as far as it goes.
   */
  authorized(body: Uint8Array): void {
    // goim's empty op 8: not opted in; positions stay for a later server.
    if (body.length === 0) return;
    const streams = _object(_object(_parse(body))?.streams);
    if (streams === undefined) return this.#malformed("Auth reply has no streams object", body);
    // Streams are off: pushes come plain.
    if (Object.keys(streams).length === 0) return;
    const room = this.#entry(streams, "room", body);
    const id = typeof room?.id === "string" ? room.id : "";
    if (room !== undefined && id === "") this.#malformed("Auth reply's room has no id", body);
    this.#roomId = id;
    const roomAt = id === "" ? undefined : this.#settle("room", this.#room, room!, id);
    this.#room = roomAt === undefined ? undefined : { ...roomAt, id };
    const mid = this.#entry(streams, "mid", body);
    if (mid !== undefined) this.#mid = this.#settle("mid", this.#mid, mid, undefined);
    const all = this.#entry(streams, "all", body);
    if (all !== undefined) this.#all = this.#settle("all", this.#all, all, undefined);
  }

  /**
   * Reads op 13's body: an opted-in client joins the new room live, at its
   * position. Returns the room op 13 names, or undefined for goim's echo.
   */
  roomChanged(body: Uint8Array): string | undefined {
    const reply = _object(_parse(body));
    // goim's echo of the room id: not opted in.
    if (reply === undefined || typeof reply.id !== "string") return undefined;
    const at = _position(reply);
    // Streams off: only the id. Anything else without a position breaks section 8.5.
    if (at === undefined && (reply.epoch !== undefined || reply.offset !== undefined)) {
      this.#malformed("Room change reply has a malformed position", body);
    }
    this.#roomId = reply.id;
    this.#room = reply.id !== "" && at !== undefined ? { id: reply.id, ...at } : undefined;
    return reply.id;
  }

  /**
   * Reads an op-18 frame: the push to deliver, with its inner op and bytes,
   * or undefined when it is one already held (or malformed, which is reported).
   */
  push(frame: Frame): ClientFrame | undefined {
    let push: StreamPush;
    try {
      push = decodeStreamPush(frame.body);
    } catch (err) {
      this.#report(_asError(err));
      return undefined;
    }
    const { epoch, offset } = push;
    const kind = _NAMES[push.kind]!;
    const held = kind === "room" ? this.#room : kind === "mid" ? this.#mid : this.#all;
    if (held !== undefined) {
      if (held.epoch === epoch && offset <= held.offset) return undefined;
      if (held.epoch !== epoch || offset !== held.offset + 1) {
        const id = kind === "room" ? this.#room!.id : undefined;
        this.#lost(kind, held.epoch !== epoch ? "epoch" : "gap", id);
      }
      held.epoch = epoch;
      held.offset = offset;
    } else if (kind === "mid") {
      this.#mid = { epoch, offset };
    } else if (kind === "all") {
      this.#all = { epoch, offset };
    } else if (this.#roomId) {
      // A room position is only worth holding with the room's id to name.
      this.#room = { id: this.#roomId, epoch, offset };
    }
    return {
      ver: frame.ver,
      op: push.op,
      seq: frame.seq,
      body: push.body,
      stream: { kind, epoch, offset },
    };
  }

  /** The position to hold after op 8's entry for one stream; reports one not recovered. */
  #settle(
    stream: StreamName,
    held: StreamPosition | undefined,
    entry: _Record,
    id: string | undefined,
  ): StreamPosition | undefined {
    const at = _position(entry);
    const heldRoom = (held as RoomPosition | undefined)?.id;
    if (entry.recovered === false) {
      const reason = typeof entry.reason === "string" && _REASONS.includes(entry.reason)
        ? entry.reason as StreamLostReason
        : "window";
      // The pushes missed are those of the room held, which a "room" reason says is not this one.
      this.#lost(stream, reason, heldRoom ?? id);
    }
    // Recovered: the replay that follows moves the position held up to `at`
    // frame by frame, so a connection lost mid-replay asks again from there.
    if (
      entry.recovered === true && held !== undefined && at !== undefined &&
      held.epoch === at.epoch && held.offset <= at.offset &&
      (id === undefined || heldRoom === id)
    ) {
      return held;
    }
    if (at !== undefined) return at;
    return id === undefined || heldRoom === id ? held : undefined;
  }

  /** Op 8's entry for `stream`, when it is an object with a position; reports one that is not. */
  #entry(streams: _Record, stream: StreamName, body: Uint8Array): _Record | undefined {
    const entry = streams[stream];
    if (entry === undefined) return undefined;
    const object = _object(entry);
    if (object !== undefined && _position(object) !== undefined) return object;
    this.#malformed(`Auth reply's ${stream} has no valid epoch and offset`, body);
    return object;
  }

  #malformed(what: string, body: Uint8Array): void {
    const text = _decoder.decode(body.subarray(0, 200));
    this.#report(new ProtocolError(`${what}: ${text}`));
  }

  #lost(stream: StreamName, reason: StreamLostReason, id: string | undefined): void {
    const lost: StreamLost = id ? { stream, id, reason } : { stream, reason };
    for (const listener of this.#listeners) {
      try {
        listener(lost);
      } catch (err) {
        this.#report(_asError(err));
      }
    }
  }
}

function _parse(body: Uint8Array): unknown {
  try {
    return JSON.parse(_strictDecoder.decode(body));
  } catch {
    return undefined;
  }
}

function _object(value: unknown): _Record | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as _Record
    : undefined;
}

function _position(value: _Record): StreamPosition | undefined {
  const { epoch, offset } = value;
  return _isEpoch(epoch) && _isOffset(offset) ? { epoch, offset } : undefined;
}

function _isEpoch(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function _isOffset(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

function _checked(stream: StreamName, position: StreamPosition): StreamPosition {
  if (typeof position !== "object" || position === null) {
    throw new TypeError(`Position of ${stream} must be an object: ${_typeOf(position)}`);
  }
  const { epoch, offset } = position;
  for (const [name, n] of [["Epoch", epoch], ["Offset", offset]] as const) {
    if (typeof n !== "number") {
      throw new TypeError(`${name} of ${stream} must be a number: ${_typeOf(n)}`);
    }
  }
  if (!_isEpoch(epoch)) {
    throw new RangeError(`Epoch of ${stream} must be an integer from 0 to 2^32 - 1: ${epoch}`);
  }
  if (!_isOffset(offset)) {
    throw new RangeError(`Offset of ${stream} must be a safe integer from 0: ${offset}`);
  }
  return { epoch, offset };
}

function _typeOf(value: unknown): string {
  return value === null ? "null" : typeof value;
}
