/**
 * The pushes of a `BusCluster`: delivered here, batched per event-loop turn
 * for the other workers, and, with streams on, ordered per stream by the
 * way {@linkcode BusStreams} decides (its owner, or each isolate).
 *
 * @module
 */
import { assertPushOp } from "../protocol/op.ts";
import { BacklogFullError } from "../server/backlog_full_error.ts";
import type { Push } from "../server/push.ts";
import type { HistoryLimits } from "../server/streams.ts";
import type { BusMessage } from "./bus_messages.ts";
import { BusStreams, type BusStreamsLink } from "./bus_streams.ts";
import type { ClusterHub } from "./cluster.ts";
import { isStamped, unstamped } from "./stream_owner.ts";

/** Refused pushes from other workers are logged at most this often, in ms. */
const _REFUSED_LOG_MS = 10_000;

/**
 * What {@linkcode BusRelay} needs of its bus: the streams' link, and the hub once attached.
 *
 * @example
 * ```ts
 * import type { BusRelayHost } from "./bus_relay.ts";
 *
 * function attached(host: BusRelayHost): boolean {
 *   return host.hub() !== undefined;
 * }
 * ```
 */
export interface BusRelayHost extends BusStreamsLink {
  /** The hub, once the bus is attached. */
  hub(): ClusterHub | undefined;
}

/**
 * A bus's pushes: {@linkcode BusRelay.push} delivers one taken here (or
 * routes it to its stream's owner), {@linkcode BusRelay.received} one from
 * another worker, and {@linkcode BusRelay.take} hands the turn's batch to
 * post.
 *
 * @example
 * ```ts
 * import { Comet } from "../server/comet.ts";
 * import { silentLogger } from "../log.ts";
 * import { BusRelay } from "./bus_relay.ts";
 *
 * await using comet = new Comet();
 * const relay = new BusRelay({
 *   workerId: 0,
 *   hub: () => comet,
 *   send: () => false,
 *   heard: () => false,
 *   flush: () => {},
 *   schedule: () => {},
 *   logger: () => silentLogger,
 * });
 * relay.push({ kind: "room", op: 1000, room: "live://1", body: new Uint8Array() }, 1);
 * console.log(relay.take()?.length); // 1
 * ```
 */
export class BusRelay {
  #host: BusRelayHost;
  /** Pushes taken this turn, posted together at its end. */
  #outbox: Push[] = [];
  #streams: BusStreams | undefined;
  #refusedLoggedAt = -Infinity;

  constructor(host: BusRelayHost) {
    this.#host = host;
  }

  /**
   * Turns streams on (see {@linkcode BusStreams}).
   *
   * @throws {TypeError} When already on.
   */
  history(limits: HistoryLimits, workers: number | undefined, timeout: number): BusStreams {
    if (this.#streams !== undefined) throw new TypeError("Cluster history is already made");
    const options = { limits, timeout, ...(workers !== undefined && { workers }) };
    return this.#streams = new BusStreams(this.#host, options);
  }

  /**
   * Takes a push entering this worker; returns how many of this worker's
   * connections it was queued to now. Local first: what the hub throws (a
   * full backlog) is thrown, and nothing is posted. With owned streams, a
   * stream push goes to its owner instead (`0` connections now: they get it
   * once the owner stamped it); the owner's backlog, not this worker's,
   * decides whether it is refused.
   *
   * @param remote The other workers now: none, and nothing is posted (streams owned aside).
   */
  push(push: Push, remote: number): number {
    const streams = this.#streams;
    if (streams?.workers !== undefined && push.kind !== "keys") {
      // Refused where it is taken, as the hub would: its owner would only log it.
      assertPushOp(push.op);
      const own = streams.take(push);
      return own === undefined ? 0 : this.#deliverOwned(own);
    }
    const local = this.#attached().deliver(push);
    if (remote > 0) {
      // Each isolate orders its own streams here: the others stamp it themselves.
      this.#outbox.push(unstamped(push));
      this.#host.schedule();
    }
    return local;
  }

  /** Handles a `route`, `hist` or `hist-reply` from worker `m.w`; ignores any other message. */
  directed(m: BusMessage, incarnation: string): void {
    switch (m.t) {
      case "route":
        for (const push of m.pushes) this.received(m.w, push, true);
        return;
      case "hist":
        this.#streams?.onAsk(m.w, m.i, m.id, m.queries);
        return;
      case "hist-reply":
        if (m.to === incarnation) this.#streams?.onReply(m.id, m.answers, m.error);
    }
  }

  /**
   * Delivers a push from worker `from`; `owned`: routed here to be stamped,
   * then posted to every worker. A refusal is logged now and then; the
   * worker that took the push answered it already.
   */
  received(from: number, push: Push, owned = false): void {
    const hub = this.#host.hub();
    if (hub === undefined || hub.closing) return;
    try {
      if (owned) this.#deliverOwned(push);
      else hub.deliver(push);
    } catch (err) {
      if (!(err instanceof BacklogFullError)) {
        this.#host.logger().warn("Dropped a push from another worker", { from, error: err });
        return;
      }
      // This worker's members miss it. The hub counts each refusal
      // (comet_pushes_refused_total); the log says so now and then.
      const now = Date.now();
      if (now - this.#refusedLoggedAt >= _REFUSED_LOG_MS) {
        this.#refusedLoggedAt = now;
        this.#host.logger().warn(
          "Refused pushes from other workers: this worker's backlog is full",
          {
            from,
            error: err.message,
          },
        );
      }
    }
  }

  /** The pushes to post to every worker now, and forgets them; undefined when none. */
  take(): Push[] | undefined {
    if (this.#outbox.length === 0) return undefined;
    const pushes = this.#outbox;
    this.#outbox = [];
    return pushes;
  }

  /** Pushes are about to be posted: those waiting for an owner go to it when it can be reached. */
  flushRoutes(): void {
    this.#streams?.flushRoutes();
  }

  /** Worker `w` said hello: pushes waiting for it (it owns their streams) can go now. */
  hello(w: number): void {
    if (this.#streams?.waitsFor(w)) this.#host.schedule();
  }

  /** Worker `w` left or died. */
  gone(w: number): void {
    this.#streams?.peerGone(w);
  }

  /**
   * The bus lost messages: when each isolate orders its own streams, they
   * would hide the hole, so they start anew under new epochs.
   */
  lost(): void {
    if (this.#streams !== undefined && this.#streams.workers === undefined) this.#streams.reset();
  }

  /** Rejects what is asked of other workers and drops what waits. */
  close(): void {
    this.#streams?.close();
    this.#outbox = [];
  }

  #attached(): ClusterHub {
    const hub = this.#host.hub();
    if (hub === undefined) throw new TypeError("Cluster is not attached to a hub yet");
    return hub;
  }

  /**
   * Delivers a push of streams this worker owns, then posts it to every
   * other worker. Refused here (the hub threw), it is posted only if the hub
   * stamped it first: its offset is taken, and the others must not see a
   * hole. Unstamped (a hub that keeps no history: a bug), it is posted as it
   * is, and each hub's history logs it.
   */
  #deliverOwned(push: Push): number {
    let delivered = false;
    try {
      const n = this.#attached().deliver(push);
      delivered = true;
      return n;
    } finally {
      if (delivered || isStamped(push)) {
        this.#outbox.push(push);
        this.#host.schedule();
      }
    }
  }
}
