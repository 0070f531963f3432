import { _putInt32 } from "../protocol/_int.ts";
import type { Frame } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import { ProtocolError } from "../protocol/protocol_error.ts";
import { isInt32 } from "./_util.ts";
import type { Channel } from "./channel.ts";
import type { Deadlines } from "./deadlines.ts";
import { MAX_ID_LENGTH, MAX_WATCH } from "./defaults.ts";
import type { HubEvents } from "./hub_events.ts";
import type { CometStats } from "./hub_stats.ts";
import type { Limits } from "./limits.ts";
import type { Operator } from "./operator.ts";
import { pullFrames } from "./read_frames.ts";
import type { Recovery } from "./recovery.ts";
import type { Registry } from "./registry.ts";
import { Upstream } from "./upstream.ts";

const _decoder = new TextDecoder();

/**
 * Parses goim's comma-separated op list (`"1000,1001"`).
 *
 * @throws {ProtocolError} When an entry is not a 32-bit integer.
 */
function _parseOps(body: Uint8Array): number[] {
  const text = _decoder.decode(body).trim();
  if (text === "") return [];
  const parts = text.split(",").map((s) => s.trim());
  // Decimal integers only, as goim's strconv.ParseInt(s, 10, 32): Number() alone
  // would take "" and " " as 0 and accept "0x10" or "1e3".
  const ops = parts.map((s) => (/^[+-]?\d{1,10}$/.test(s) ? Number(s) : NaN));
  if (ops.length > MAX_WATCH || !ops.every(isInt32)) {
    throw new ProtocolError(`Op list is not comma-separated 32-bit integers: ${text.slice(0, 64)}`);
  }
  return ops;
}

/** Where a session's end goes: the part that runs sessions from accept to cleanup. */
export interface SessionEnd {
  /** Ends `ch`'s session, however it ended, once. */
  end(ch: Channel, registered: boolean, err?: unknown): void;
}

/** The parts of the hub that client ops act on. */
export interface ClientOpsParts {
  /** The application logic: heartbeats and upstream messages go to it. */
  operator: Operator;
  /** Connections by key, user and room. */
  registry: Registry;
  /** Room and upstream limits. */
  limits: Limits;
  /** Heartbeats re-arm a connection's deadline. */
  deadlines: Deadlines;
  /** The observer and the trace log. */
  events: HubEvents;
  /** Counters. */
  stats: CometStats;
  /** Where a session that stops reading ends. */
  sessions: SessionEnd;
  /** Answers room changes of connections that opted in to streams. */
  recovery: Recovery;
}

/**
 * What an authenticated connection may ask, as goim's operation.go: a
 * heartbeat (op 2), an upstream message (op 4), a room change (op 12),
 * watching and unwatching ops (op 14, 16). Each client frame is acted on
 * here, and the answer says whether the wire may hand over the next one.
 *
 * @example
 * ```ts ignore
 * import { ClientOps } from "./client_ops.ts";
 * const ops = new ClientOps({ operator, registry, limits, deadlines, events, stats, sessions });
 * ops.listen(channel); // frames now go to ops.frame(channel, frame)
 * ```
 */
export class ClientOps {
  #operator: Operator;
  #registry: Registry;
  #limits: Limits;
  #deadlines: Deadlines;
  #events: HubEvents;
  #stats: CometStats;
  #sessions: SessionEnd;
  #upstream: Upstream;
  #recovery: Recovery;

  /** Acts on the hub's `parts`. */
  constructor(parts: ClientOpsParts) {
    this.#operator = parts.operator;
    this.#registry = parts.registry;
    this.#limits = parts.limits;
    this.#deadlines = parts.deadlines;
    this.#events = parts.events;
    this.#stats = parts.stats;
    this.#sessions = parts.sessions;
    this.#recovery = parts.recovery;
    this.#upstream = new Upstream(parts.operator, parts.events.logger);
  }

  /**
   * Acts on client ops until the connection ends: each frame goes to
   * {@linkcode ClientOps.frame}. A wire that delivers its own frames
   * (`Wire._listen`) costs an idle connection nothing more than its socket
   * read; other wires are pulled with `read()`.
   */
  listen(ch: Channel): void {
    const wire = ch.wire;
    if (wire._listen !== undefined) wire._listen(ch);
    else pullFrames(wire, ch);
  }

  /**
   * Acts on one client frame (see `FrameReader._frame`). Whether the wire
   * may hand over the next one: `true`, `false` once the session has ended,
   * or a promise (an op that must finish first, or a full queue). Never
   * throws, and the promise never rejects.
   */
  frame(ch: Channel, frame: Frame): boolean | Promise<boolean> {
    // Once closing (slow, replaced, shutting down) or aborted, stop acting on
    // client frames: a heartbeat would push the close grace out to a full
    // heartbeat deadline, and a room change would rejoin a dying channel.
    if (ch.state !== "open") return this.#stopReading(ch);
    let wait: Promise<void> | undefined;
    try {
      wait = this.#op(ch, frame);
    } catch (err) {
      return this.#stopReading(ch, err);
    }
    if (wait === undefined) return this.#readOn(ch);
    return wait.then(() => this.#readOn(ch), (err) => this.#stopReading(ch, err));
  }

  /** Whether the wire may go on: at once, or once the writer has made room in a full queue. */
  #readOn(ch: Channel): boolean | Promise<boolean> {
    if (ch.state !== "open") return this.#stopReading(ch);
    // A full queue pauses reading: the client is throttled by its own TCP window.
    const writable = ch._writable();
    return writable === undefined ? true : writable.then(() => this.#readOn(ch));
  }

  /** The session ends here; the wire reads no more. */
  #stopReading(ch: Channel, err?: unknown): false {
    this.#sessions.end(ch, true, err);
    return false;
  }

  /**
   * Acts on one client op. Returns a promise when the next read must wait
   * for it; throws {@linkcode ProtocolError} on a malformed op. An op that
   * closes the connection leaves it no longer open, which ends the reading.
   */
  #op(ch: Channel, frame: Frame): Promise<void> | undefined {
    const { op, seq, ver, body } = frame;
    const events = this.#events;
    switch (op) {
      case Op.Heartbeat: {
        this.#deadlines.rearm(ch);
        // A quiet moment for this connection: storage its queue grew under pushes goes.
        if (ch.queued === 0) ch._trim();
        const online = new Uint8Array(4);
        const count = this.#heartbeatOnline(ch._room);
        _putInt32(online, 0, count);
        ch.reply(Op.HeartbeatReply, online, seq, ver);
        if (ch._traced) events.trace(ch, "heartbeat", { seq, online: count });
        if (events.observer?.heartbeat) events.notify("heartbeat", ch);
        if (this.#operator.heartbeat) this.#callHeartbeat(ch);
        return;
      }
      case Op.SendMsg: {
        if (!this.#limits.upstreamAllowed(ch)) return;
        if (ch._traced) events.trace(ch, "upstream message", { seq, bytes: body.length });
        if (!this.#operator.receive) {
          ch.reply(Op.SendMsgReply, body, seq, ver);
          return;
        }
        return this.#upstream.send(ch, frame);
      }
      case Op.ChangeRoom:
        return this.#changeRoom(ch, frame);
      case Op.Sub: {
        const ops = _parseOps(body);
        ch.watch(ops);
        if (ch.watchCount > MAX_WATCH) {
          throw new ProtocolError(`Watching more than ${MAX_WATCH} ops`);
        }
        ch.reply(Op.SubReply, body, seq, ver);
        if (ch._traced) events.trace(ch, "watch", { seq, ops: ops.join(",") });
        return;
      }
      case Op.Unsub: {
        const ops = _parseOps(body);
        ch.unwatch(ops);
        ch.reply(Op.UnsubReply, body, seq, ver);
        if (ch._traced) events.trace(ch, "unwatch", { seq, ops: ops.join(",") });
        return;
      }
      default:
        events.logger.debug("Ignored client op", { key: ch.key, op });
        if (ch._traced) events.trace(ch, "ignored op", { seq, op });
    }
  }

  #changeRoom(ch: Channel, frame: Frame): Promise<void> | undefined {
    const room = _decoder.decode(frame.body);
    if (ch._rooms !== undefined && room !== "" && !ch._rooms.includes(room)) {
      // Refused out loud: an op-13 reply would let the client believe it moved.
      this.#stats.roomRefused++;
      if (ch._traced) this.#events.trace(ch, "room refused", { seq: frame.seq, to: room });
      ch.close(`room refused: ${room.slice(0, 64)}`);
      return;
    }
    const rooms = this.#registry.rooms;
    // Checked before the cluster hears of the room; joins in flight may overshoot a little.
    if (room.length <= MAX_ID_LENGTH && !this.#limits.roomAllowed(room, ch._room, rooms)) {
      this.#limits.refuseRoom(ch, room, rooms.size);
      return;
    }
    const events = this.#events;
    if (
      events.observer?.joining && room !== "" && room !== ch._room && room.length <= MAX_ID_LENGTH
    ) {
      return events.wait("joining", () => events.observer?.joining?.(ch, room)).then(() =>
        // Closed meanwhile: the reading ends instead.
        ch.state === "open" ? this.#roomChanged(ch, room, frame) : undefined
      );
    }
    return this.#roomChanged(ch, room, frame);
  }

  #roomChanged(ch: Channel, room: string, { body, seq, ver }: Frame): Promise<void> | undefined {
    const from = ch._room;
    this.#registry.changeRoom(ch, room);
    if (ch._traced) this.#events.trace(ch, "room changed", { seq, from, to: room });
    // An opted-in client's op 13 carries the room's position (protocol section 8.5).
    if (ch._optedIn) return this.#recovery.changedRoom(ch, room, seq, ver);
    ch.reply(Op.ChangeRoomReply, body, seq, ver);
  }

  /** The count a heartbeat reply carries: the observer's (cluster-wide) or this hub's. */
  #heartbeatOnline(room: string): number {
    const observer = this.#events.observer;
    const registry = this.#registry;
    if (observer?.roomOnline === undefined) return registry.roomOnline(room);
    try {
      const n = observer.roomOnline(room);
      // An int32 goes on the wire; a broken observer must not turn into a wrong count.
      return isInt32(n) && n >= 0 ? n : registry.roomOnline(room);
    } catch (err) {
      this.#events.logger.warn("Observer roomOnline failed", { room, error: err });
      return registry.roomOnline(room);
    }
  }

  #callHeartbeat(ch: Channel): void {
    Promise.resolve()
      .then(() => this.#operator.heartbeat!(ch))
      .catch((err) => {
        this.#events.logger.warn("Operator heartbeat failed", { key: ch.key, error: err });
      });
  }
}
