import { type Frame, frameOp, PROTOCOL_VERSION } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import { ProtocolError } from "../protocol/protocol_error.ts";
import { isThenable } from "./_util.ts";
import { Channel } from "./channel.ts";
import type { ChannelHooks, ChannelOptions } from "./channel_options.ts";
import { ClientOps, type ClientOpsParts } from "./client_ops.ts";
import { OperatorUnavailableError } from "./operator_unavailable_error.ts";
import type { Session } from "./operator.ts";
import { type NormalizedSession, normalizeSession } from "./session_rules.ts";
import { readFrame } from "./read_frames.ts";
import { readRecover, type RecoverAsk } from "./recover_ask.ts";
import { Recovery } from "./recovery.ts";
import type { StreamHistory } from "./streams.ts";
import type { ConnInfo, Wire } from "./wire.ts";

/** What {@linkcode Sessions} needs besides the parts client ops act on. */
export interface SessionsParts extends Omit<ClientOpsParts, "sessions" | "recovery"> {
  /** Stamps pushes and answers opted-in clients; undefined: streams are off. */
  history?: StreamHistory | undefined;
  /** What every channel shares, but its hooks: the sessions supply them. */
  channels: Omit<ChannelOptions<Channel>, "hooks">;
  /** Milliseconds a connection may take to authenticate. */
  handshakeTimeout: number;
  /** The heartbeat deadline of sessions that name none. */
  heartbeatTimeout: number;
  /** User ids whose connections log every step; undefined: none. */
  traceMids: ReadonlySet<number> | undefined;
}

/**
 * Forgets the upgrade headers. Assigned, not deleted: `delete` turns the
 * object into a hash table, about 250 bytes more for every WebSocket
 * connection's whole life.
 */
function _dropHeaders(info: ConnInfo): void {
  if (info.headers !== undefined) info.headers = undefined;
}

/**
 * Each connection's protocol session from accept to cleanup: admission,
 * the handshake up to the auth frame, the operator's verdict, registration,
 * then client ops (see {@linkcode ClientOps}) until it ends, and the
 * cleanup that takes it out of every index. It also counts the live
 * connections a shutdown waits for.
 *
 * @example
 * ```ts ignore
 * import { Sessions } from "./sessions.ts";
 * const sessions = new Sessions(parts);
 * sessions.serve(wire, () => console.log("closed"));
 * ```
 */
export class Sessions {
  #parts: SessionsParts;
  #ops: ClientOps;
  #recovery: Recovery;
  #channels: ChannelOptions<Channel>;
  #handshaking = new Set<Channel>();
  /** What `Comet.serve` waits on, for the sessions it started; transports pass none. */
  #onEnds = new Map<Channel, () => void>();
  #live = 0;
  #closing = false;
  #drained: (() => void) | undefined;

  /** Runs sessions on the hub's `parts`. */
  constructor(parts: SessionsParts) {
    this.#parts = parts;
    const recovery = this.#recovery = new Recovery(parts.history, parts.stats, parts.events.logger);
    this.#ops = new ClientOps({ ...parts, sessions: this, recovery });
    const { stats, events, deadlines } = parts;
    // One object for every channel of the hub: a channel holds no hooks of its own.
    const hooks: ChannelHooks<Channel> = {
      dropped: (ch, count) => {
        stats.dropped += count;
        if (ch._traced) events.trace(ch, "push dropped, slow consumer", { count });
      },
      slow: () => void stats.slowClosed++,
      closing: (ch, grace) => deadlines.grace(ch, grace),
      pushed: (ch, frame) =>
        events.trace(ch, "push queued", { op: frameOp(frame), bytes: frame.length }),
      frame: (ch, frame) => this.#ops.frame(ch, frame),
      ended: (ch, err) => this.end(ch, true, err),
    };
    this.#channels = { ...parts.channels, hooks };
  }

  /** Connections still in their handshake. */
  get handshaking(): number {
    return this.#handshaking.size;
  }

  /** True once {@linkcode Sessions.closeAll} began. */
  get closing(): boolean {
    return this.#closing;
  }

  /** Starts serving `wire`; `onEnd` runs once the connection is fully closed. */
  serve(wire: Wire, onEnd?: () => void): void {
    const { limits } = this.#parts;
    const ip = wire.info.remoteAddr.hostname;
    // A trusted proxy's connection is counted by its client's address, once the wire knows it.
    const proxied = limits.proxies.trusts(ip);
    const admitted = proxied ? limits.admitTotal(ip, this.#live) : limits.admit(ip, this.#live);
    if (this.#closing || !admitted) {
      if (admitted && !proxied) limits.release(ip);
      wire.close();
      onEnd?.();
      return;
    }
    const parts = this.#parts;
    const ch = new Channel(wire, this.#channels);
    if (!proxied) ch._peerIp = ip;
    this.#live++;
    parts.stats.accepted++;
    this.#handshaking.add(ch);
    parts.deadlines.handshake(ch, parts.handshakeTimeout);
    if (onEnd !== undefined) this.#onEnds.set(ch, onEnd);
    // Counted by its client as soon as the wire knows it (a wire upgraded already: now, on a
    // channel fully set up, so that a refusal closes it like any other), not at the auth frame.
    if (proxied) wire._whenClientKnown?.(() => this.#admitClient(ch));
    this.#awaitAuth(ch);
  }

  /**
   * Closes every connection with `reason` and stops taking new ones.
   *
   * @returns A promise that settles once no connection is left.
   */
  closeAll(reason: string, registered: Iterable<Channel>): Promise<void> {
    this.#closing = true;
    const drained = new Promise<void>((resolve) => (this.#drained = resolve));
    for (const ch of this.#handshaking) ch.close(reason);
    for (const ch of registered) ch.close(reason);
    if (this.#live === 0) this.#drained!();
    return drained;
  }

  /** Cuts every connection off at once. */
  abortAll(registered: Iterable<Channel>): void {
    for (const ch of this.#handshaking) ch.abort();
    for (const ch of registered) ch.abort();
  }

  /** Live connections, authenticated or not. */
  get live(): number {
    return this.#live;
  }

  // --- the session ---------------------------------------------------------------

  /**
   * Reads up to the auth frame (goim skips whatever a client sends before
   * it), then authenticates. Callbacks rather than an async function: with a
   * synchronous operator, the handshake then makes no promise of its own.
   */
  #awaitAuth(ch: Channel): void {
    const failed = (err: unknown): void => this.end(ch, false, err);
    const onFrame = (frame: Frame | null): void => {
      if (frame === null) return this.end(ch, false);
      if (frame.op !== Op.Auth) return this.#awaitAuth(ch);
      let registered: boolean | Promise<boolean>;
      try {
        registered = this.#authenticate(ch, frame);
      } catch (err) {
        return failed(err);
      }
      if (registered === true) this.#ops.listen(ch);
      else if (registered === false) this.end(ch, false);
      else registered.then((ok) => ok ? this.#ops.listen(ch) : this.end(ch, false), failed);
    };
    readFrame(ch.wire, onFrame, failed);
  }

  /**
   * Counts a proxied connection under its client's address, or closes it
   * with op 6 when that address is over a per-IP limit; false then.
   */
  #admitClient(ch: Channel): boolean {
    if (ch.state !== "handshake") return false;
    const ip = ch.info.remoteAddr.hostname;
    if (!this.#parts.limits.admitPeer(ip)) {
      ch.close("limit: too many connections from this address");
      return false;
    }
    ch._peerIp = ip;
    return true;
  }

  /**
   * Asks the operator about the auth frame and registers the session.
   * Whether the connection is registered: at once for a synchronous operator
   * (the usual case: no turn of the event loop is spent waiting), else once
   * the operator or the `opening` observer has answered.
   */
  #authenticate(ch: Channel, frame: Frame): boolean | Promise<boolean> {
    // Asked for once: a wire may make it on each call.
    const info = ch.info;
    // Through a trusted proxy, and not counted yet: the wire's address is final by now.
    if (ch._peerIp === undefined && !this.#admitClient(ch)) return false;
    let ask: RecoverAsk | undefined;
    let result: Session | PromiseLike<Session>;
    try {
      // Read by the hub, whatever the operator: a bad one is refused before the operator is asked.
      ask = readRecover(frame.body);
      result = this.#parts.operator.connect({ body: frame.body, info });
    } catch (err) {
      return this.#refused(ch, info, err);
    }
    if (!isThenable(result)) return this.#session(ch, frame, info, result, ask);
    return Promise.resolve(result).then(
      (session) => this.#session(ch, frame, info, session, ask),
      (err) => this.#refused(ch, info, err),
    );
  }

  /**
   * The operator's answer, checked, then registered: at once, or after the
   * `opening` observer has been heard.
   */
  #session(
    ch: Channel,
    frame: Frame,
    info: ConnInfo,
    result: Session,
    ask: RecoverAsk | undefined,
  ): boolean | Promise<boolean> {
    const parts = this.#parts;
    let session: NormalizedSession;
    try {
      session = normalizeSession(result, parts.heartbeatTimeout);
    } catch (err) {
      return this.#refused(ch, info, err);
    }
    // The upgrade headers are for the operator's connect alone: a kilobyte or
    // more per connection is not kept for the connection's whole life.
    _dropHeaders(info);
    const rooms = parts.registry.rooms;
    if (!parts.limits.roomAllowed(session.room, "", rooms)) {
      parts.limits.refuseRoom(ch, session.room, rooms.size);
      return false;
    }
    const events = parts.events;
    if (!events.observer?.opening) return this.#opened(ch, frame, info, session, ask);
    const { key, mid, room } = session;
    return events.wait("opening", () => events.observer?.opening?.({ key, mid, room })).then(() =>
      this.#opened(ch, frame, info, session, ask)
    );
  }

  /**
   * Registers the session and answers the auth frame, unless closed
   * meanwhile; a client that opted in to streams is answered where they
   * stand (see {@linkcode Recovery.open}).
   */
  #opened(
    ch: Channel,
    frame: Frame,
    info: ConnInfo,
    session: NormalizedSession,
    ask: RecoverAsk | undefined,
  ): boolean | Promise<boolean> {
    if (this.#closing || ch.state !== "handshake") {
      ch.close("server shutting down");
      return false;
    }
    const ip = info.remoteAddr.hostname;
    let registered: boolean | Promise<boolean> = true;
    if (ask === undefined) {
      this.#register(ch, session, ip);
      ch.reply(Op.AuthReply, "", frame.seq, frame.ver);
    } else {
      registered = this.#recovery.open(
        ch,
        ask,
        session,
        frame.seq,
        frame.ver,
        () => this.#register(ch, session, ip),
      );
      if (registered === false) return false;
    }
    const { stats, events } = this.#parts;
    stats.authOk++;
    events.logger.debug("Connected", { key: ch.key, mid: ch.mid, room: ch.room });
    if (ch._traced) {
      events.trace(ch, "authenticated", {
        room: ch.room,
        platform: ch.platform,
        transport: info.transport,
        remote: info.remoteAddr.hostname,
        ...(session.expiresAt !== Infinity && {
          expires: new Date(session.expiresAt).toISOString(),
        }),
      });
    }
    return registered;
  }

  /** The operator refused the client (or failed): the connection closes with the reason. */
  #refused(ch: Channel, info: ConnInfo, err: unknown): false {
    _dropHeaders(info);
    const { stats, events, limits } = this.#parts;
    stats.authFailed++;
    const message = err instanceof Error ? err.message : String(err);
    const remote = info.remoteAddr.hostname;
    events.logger.debug("Auth refused", { remote, error: message });
    ch.close(`auth failed: ${message}`);
    // An auth service that is down or busy is not the client's doing: only
    // refusals count towards barring its address.
    if (!(err instanceof OperatorUnavailableError)) limits.authFailed(remote);
    return false;
  }

  #register(ch: Channel, s: NormalizedSession, ip: string): void {
    const { deadlines, limits, events, registry, traceMids } = this.#parts;
    ch.key = s.key;
    ch.mid = s.mid;
    ch.platform = s.platform;
    ch.watch(s.accepts);
    ch._heartbeat = s.heartbeat;
    ch._rooms = s.rooms;
    ch._traced = traceMids !== undefined && traceMids.has(s.mid);
    limits.startUpstream(ch);
    // The heap runs on performance.now(); expiresAt is wall-clock time.
    ch._expiresAt = s.expiresAt === Infinity
      ? Infinity
      : deadlines.now() + (s.expiresAt - Date.now());
    ch._open();
    this.#handshaking.delete(ch);
    registry.add(ch, ip, s.room);
    deadlines.rearm(ch);
    if (events.observer?.opened) events.notify("opened", ch);
  }

  /**
   * The hub moved `ch` to `room` itself: an opted-in client is told with an
   * op 13 of its own (seq 0) carrying the room's position, so that it takes
   * the new room's pushes as a new stream, not as a broken one.
   */
  moved(ch: Channel, room: string): void {
    void this.#recovery.changedRoom(ch, room, 0, PROTOCOL_VERSION);
  }

  /** Ends a session, however it ended, once; `serve`'s `onEnd` runs when all is cleaned up. */
  end(ch: Channel, registered: boolean, err?: unknown): void {
    const onEnd = this.#onEnds.get(ch);
    if (onEnd !== undefined) this.#onEnds.delete(ch);
    this.#finish(ch, registered, err)
      .catch((error) => this.#parts.events.logger.error("Session crashed", { key: ch.key, error }))
      .finally(onEnd);
  }

  /** A protocol error closes the connection with its reason; then the cleanup. */
  async #finish(ch: Channel, registered: boolean, err: unknown): Promise<void> {
    const { stats, events, deadlines, limits, registry, operator } = this.#parts;
    const logger = events.logger;
    if (err !== undefined) {
      if (err instanceof ProtocolError || err instanceof RangeError) {
        stats.protocolErrors++;
        logger.debug("Protocol error", { key: ch.key, error: err });
        ch.close(`protocol error: ${err.message}`);
      } else {
        logger.warn("Connection failed", { key: ch.key, error: err });
      }
    }
    this.#handshaking.delete(ch);
    // A graceful close is flushing (bounded by its timer); otherwise the peer is gone.
    if (ch.state !== "closing") ch.abort();
    await ch._done();
    deadlines.remove(ch);
    if (ch._peerIp !== undefined) limits.release(ch._peerIp);
    if (ch._traced) {
      events.trace(ch, "closed", { reason: ch._closeReason || "closed by the client or network" });
    }
    if (registered) {
      registry.remove(ch);
      if (events.observer?.closed) events.notify("closed", ch);
      try {
        await operator.disconnect?.(ch);
      } catch (err) {
        logger.warn("Operator disconnect failed", { key: ch.key, error: err });
      }
    }
    if (--this.#live === 0) this.#drained?.();
  }
}
