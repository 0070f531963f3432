import { type Logger, silentLogger } from "../log.ts";
import type { PushAllOptions } from "../server/comet.ts";
import type { CometObserver } from "../server/comet_observer.ts";
import type { OnlineTotal, Push, RoomCount } from "../server/push.ts";
import type { HistoryLimits, StreamHistory } from "../server/streams.ts";
import { Gatherer, type Outgoing } from "./bus_gather.ts";
import { LocalPresence } from "./bus_local.ts";
import { type BusMessage, isBusMessage, isDirected } from "./bus_messages.ts";
import { PeerFigures } from "./bus_presence.ts";
import type { BusClusterOptions } from "./bus_cluster_options.ts";
import { BusRelay } from "./bus_relay.ts";
import { type BusTransport, ChannelTransport } from "./bus_transport.ts";
import type {
  Cluster,
  ClusterHealth,
  ClusterHub,
  ClusterNode,
  ClusterPushResult,
  ClusterState,
  Gathered,
  NodeAddress,
  WorkerGroup,
} from "./cluster.ts";
import { mergeTopRooms } from "./top_rooms.ts";
import { soleNode } from "./cluster.ts";

export type { BusClusterOptions } from "./bus_cluster_options.ts";

/** Lost bus messages are logged at most this often, in ms. */
const _LOST_LOG_MS = 10_000;
/** How often every room is compared with what was posted, and opened keys age. */
const _SWEEP_MS = 1_000;
/** How long {@linkcode BusCluster.gather} waits by default, in ms. */
const _GATHER_TIMEOUT = 500;
/** How long {@linkcode BusCluster.history}'s answers wait for another worker by default, in ms. */
const _ANSWER_TIMEOUT = 3_000;
/** What a connection replaced by a newer one with its key hears, as on a single hub. */
const _REPLACED = "replaced by a new connection with the same key";

/**
 * The workers (isolates) of one process as one cluster node, joined by a
 * {@linkcode BusTransport}: a `PortMesh` of `MessagePort`s (the command's
 * workers) or a `BroadcastChannel` (the default; the edge's isolates). A
 * push taken by any worker reaches every target on every worker, and online
 * counts, node figures and key replacement hold for the process as a whole.
 *
 * - A push is delivered to this worker's connections, then posted once to
 *   the others (cloned once per receiving worker, not per member).
 *   `pushAll`'s `speed` is shared out: each worker paces at `speed / W`.
 * - Each worker posts its changes once per event-loop turn: room counts,
 *   its connection count, client IPs it gained or lost, and the keys that
 *   opened. The others keep its figures until it says bye (or a new
 *   incarnation of its number says hello), so `roomOnline`, `topRooms`,
 *   `onlineTotal` and heartbeat replies are exact sums a turn and a message
 *   hop after a change.
 * - A key opened on one worker closes an older connection with that key on
 *   another; the newer opening wins, then the higher worker number.
 * - {@linkcode BusCluster.gather} asks every worker for a figure; the push
 *   API uses it (through {@linkcode Cluster.workers}) for `/metrics` and
 *   `/admin`.
 * - With streams on ({@linkcode BusCluster.history}), a room, mids or all
 *   push goes first to the worker that owns its stream, which stamps it and
 *   posts it to the others; see `bus_streams.ts`.
 *
 * @example
 * ```ts
 * import { BusCluster } from "./bus_cluster.ts";
 * import { Comet } from "../server/comet.ts";
 *
 * await using comet = new Comet();
 * await using cluster = new BusCluster({ workerId: 0, channel: "comet-bus-doc" });
 * cluster.attach(comet, { host: "127.0.0.1", tcpPort: 3101, wsPort: 0, wssPort: 0 });
 * const result = await cluster.pushRoom("live://1", 1000, new TextEncoder().encode("hi"));
 * console.log(result); // { local: 0, remote: 0, degraded: false }
 * ```
 */
export class BusCluster implements Cluster, WorkerGroup {
  /** The process's id as a node. */
  readonly nodeId: string;
  /** This worker's number. */
  readonly workerId: number;
  /** This start of the worker: a restarted worker is a new peer. */
  readonly incarnation: string = crypto.randomUUID();
  #transport: BusTransport;
  #peers = new PeerFigures();
  #gatherer: Gatherer;
  #logger: Logger;
  #ownLogger: boolean;
  #hub: ClusterHub | undefined;
  #address: NodeAddress | undefined;
  #local: LocalPresence | undefined;
  #observer: CometObserver | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #signal: AbortSignal | undefined;
  /** This worker's last message number. */
  #seq = 0;
  /** Each peer's last message number, by worker, with its incarnation (a record per incarnation). */
  #heard = new Map<number, { i: string; s: number }>();
  #lost = 0;
  #lostLoggedAt = -Infinity;
  #workers: number | undefined;
  #answerTimeout: number;
  #relay: BusRelay;

  /**
   * Opens the channel (or listens on `transport`); {@linkcode BusCluster.attach}
   * binds the hub and says hello.
   *
   * @throws {TypeError} When `nodeId` or `channel` is empty, both
   * `channel` and `transport` are given, or `workers` without a transport
   * that reaches one worker.
   * @throws {RangeError} When `workerId` is not a non-negative integer,
   * `workers` not an integer above it, or `answerTimeout` not positive.
   */
  constructor(options: BusClusterOptions) {
    const { nodeId = "local", workerId, channel, transport, workers } = options;
    const { answerTimeout = _ANSWER_TIMEOUT } = options;
    if (typeof nodeId !== "string" || nodeId === "") {
      throw new TypeError("Node id must not be empty");
    }
    if (channel !== undefined && transport !== undefined) {
      throw new TypeError("Bus takes a channel name or a transport, not both");
    }
    if (channel !== undefined && (typeof channel !== "string" || channel === "")) {
      throw new TypeError("Bus channel name must not be empty");
    }
    if (!Number.isSafeInteger(workerId) || workerId < 0) {
      throw new RangeError(`Worker id must be a non-negative integer: ${workerId}`);
    }
    if (workers !== undefined && (!Number.isSafeInteger(workers) || workers <= workerId)) {
      throw new RangeError(`Workers must be an integer above the worker id: ${workers}`);
    }
    if (workers !== undefined && transport?.postTo === undefined) {
      throw new TypeError("Bus needs a transport that reaches one worker (a PortMesh) for workers");
    }
    if (!(answerTimeout > 0)) {
      throw new RangeError(`Answer timeout must be positive: ${answerTimeout}`);
    }
    this.#workers = workers;
    this.#answerTimeout = answerTimeout;
    this.nodeId = nodeId;
    this.workerId = workerId;
    this.#ownLogger = options.logger !== undefined;
    this.#logger = options.logger ?? silentLogger;
    this.#gatherer = new Gatherer(workerId, this.#post, this.#logger);
    this.#relay = new BusRelay({
      workerId,
      hub: () => this.#hub,
      send: (w, message) => this.#send(w, message),
      heard: (w) => this.#heard.has(w),
      flush: () => this.#flushNow(),
      schedule: this.#schedule,
      logger: () => this.#logger,
    });
    this.#transport = transport ?? new ChannelTransport(channel ?? "comet-bus");
    this.#transport.listen({ message: (data) => this.#onMessage(data), gone: this.#gone });
    this.#signal = options.signal;
    if (this.#signal?.aborted) void this.close();
    else this.#signal?.addEventListener("abort", this.#abort, { once: true });
  }

  /** `connecting` until attached, then `ready` until closed. */
  get state(): ClusterState {
    if (this.#closed) return "closed";
    return this.#hub === undefined ? "connecting" : "ready";
  }

  /** The workers of the process: this cluster itself. */
  get workers(): WorkerGroup {
    return this;
  }

  /**
   * Binds the hub: hears its sessions and rooms through its observer, says
   * hello (every live worker answers with its figures), and starts posting.
   *
   * @throws {TypeError} When already attached, closed, or the hub has another observer.
   */
  attach(comet: ClusterHub, address: NodeAddress): void {
    if (this.#closed) throw new TypeError("Cluster is closed");
    if (this.#hub !== undefined) throw new TypeError("Cluster is already attached to a hub");
    if (comet.observer !== undefined) {
      throw new TypeError("Hub already has an observer: the cluster needs to be its observer");
    }
    if (!this.#ownLogger) this.#gatherer.logger = this.#logger = comet.logger;
    this.#hub = comet;
    this.#address = { ...address };
    const local = this.#local = new LocalPresence(comet, this.#peers, this.#schedule);
    this.#observer = {
      opened: (ch) => local.opened(ch),
      closed: (ch) => local.closed(ch),
      joining: (ch, room) => local.joining(ch, room),
      roomOpened: (room) => local.room(room),
      roomClosed: (room) => local.room(room),
      roomOnline: (room) => this.roomOnline(room),
    };
    comet.observer = this.#observer;
    this.#sweepTimer = setInterval(() => local.sweep(Date.now()), _SWEEP_MS);
    Deno.unrefTimer(this.#sweepTimer);
    this.#post({ t: "hello", snap: local.snapshot() });
    this.#logger.debug("Joined the worker bus", { node: this.nodeId, worker: this.workerId });
  }

  /** Delivers to this worker's connections with these keys, and posts the push to the others. */
  pushKeys(keys: readonly string[], op: number, body: Uint8Array): Promise<ClusterPushResult> {
    return this.#push({ kind: "keys", op, keys, body });
  }

  /** Delivers to this worker's connections of these users, and posts the push to the others. */
  pushMids(mids: readonly number[], op: number, body: Uint8Array): Promise<ClusterPushResult> {
    return this.#push({ kind: "mids", op, mids, body });
  }

  /** Delivers to this worker's members of `room`, and posts the push to the others. */
  pushRoom(room: string, op: number, body: Uint8Array): Promise<ClusterPushResult> {
    return this.#push({ kind: "room", op, room, body });
  }

  /**
   * Delivers to this worker's connections watching `op`, and posts the push
   * to the others; with `speed`, each of the W workers paces at `speed / W`.
   *
   * @throws {RangeError} When `speed` is negative.
   */
  pushAll(op: number, body: Uint8Array, options: PushAllOptions = {}): Promise<ClusterPushResult> {
    const speed = options.speed ?? 0;
    if (!(speed >= 0)) {
      return Promise.reject(new RangeError(`Speed must be a non-negative number: ${speed}`));
    }
    return this.#push({ kind: "all", op, speed: speed / (1 + this.#peers.size), body });
  }

  /** Members of `room` on every worker. */
  roomOnline(room: string): number {
    if (room === "") return 0;
    return this.#attached().roomOnline(room) + this.#peers.roomOnline(room);
  }

  /** The `limit` fullest rooms across the workers whose id starts with `prefix`. */
  topRooms(prefix: string, limit: number): RoomCount[] {
    return mergeTopRooms(this.#attached().rooms, this.#peers.rooms, prefix, limit);
  }

  /** Connections on every worker, and the distinct client IPs among them. */
  onlineTotal(): OnlineTotal {
    const connCount = this.#attached().connections + this.#peers.connections;
    return { ipCount: this.#peers.ipCount, connCount };
  }

  /** Distinct rooms with members across the workers. */
  roomCount(): number {
    const others = this.#peers.rooms;
    let n = others.size;
    for (const room of this.#attached().rooms.keys()) if (!others.has(room)) n++;
    return n;
  }

  /** The process as one node, with its connections and client IPs summed over the workers. */
  nodes(): ClusterNode[] {
    return soleNode(this.nodeId, this.#address!, this.onlineTotal());
  }

  /**
   * Healthy; `/healthz` shows the process's connections, its live workers,
   * and the bus messages this worker lost by falling behind (`bus_lost`).
   */
  health(): ClusterHealth {
    const connections = this.#hub === undefined ? 0 : this.onlineTotal().connCount;
    const detail = { connections, workers: 1 + this.#peers.size, bus_lost: this.#lost };
    return { ok: !this.#closed, detail };
  }

  /**
   * Bus messages from other workers this worker missed (a `BroadcastChannel`
   * dropped them); always 0 over a lossless transport.
   */
  get lost(): number {
    return this.#lost;
  }

  /** Sets what this worker answers when another gathers `topic`. */
  answer(topic: string, responder: () => unknown): void {
    this.#gatherer.answer(topic, responder);
  }

  /**
   * Asks every live worker, this one included, for `topic`; resolves once all
   * have answered or after `timeout` ms, with the workers that did not.
   */
  gather<T>(topic: string, timeout: number = _GATHER_TIMEOUT): Promise<Gathered<T>> {
    const peers = this.#closed ? [] : this.#peers.workers();
    return this.#gatherer.gather<T>(topic, peers, timeout);
  }

  /**
   * Turns streams on: the history this worker's hub stamps through and asks
   * at joins. With `workers`, it orders the streams this worker owns and
   * asks their owners about the others; without, it orders what this
   * isolate delivers. Call once, before pushes flow.
   *
   * @throws {TypeError} When called twice, or closed.
   */
  history(limits: HistoryLimits): StreamHistory {
    if (this.#closed) throw new TypeError("Cluster is closed");
    return this.#relay.history(limits, this.#workers, this.#answerTimeout);
  }

  /** Says bye, stops posting and closes the transport; the hub is the server's to close. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#signal?.removeEventListener("abort", this.#abort);
    clearTimeout(this.#flushTimer);
    if (this.#hub !== undefined) {
      this.#flush();
      this.#post({ t: "bye" });
      if (this.#hub.observer === this.#observer) this.#hub.observer = undefined;
    }
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    this.#gatherer.close();
    this.#relay.close();
    this.#local?.close();
    this.#peers.clear();
    this.#transport.close();
    return Promise.resolve();
  }

  /** Same as {@linkcode BusCluster.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #abort = (): void => void this.close();

  #attached(): ClusterHub {
    if (this.#hub === undefined) throw new TypeError("Cluster is not attached to a hub yet");
    return this.#hub;
  }

  #push(push: Push): Promise<ClusterPushResult> {
    try {
      this.#attached();
      const remote = this.#peers.size;
      return Promise.resolve({ local: this.#relay.push(push, remote), remote, degraded: false });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Sends to worker `w` alone: no message number of its own, so the others see no gap. */
  #send(w: number, message: Outgoing): boolean {
    if (this.#closed) return false;
    (message as BusMessage).w = this.workerId;
    (message as BusMessage).i = this.incarnation;
    (message as BusMessage).s = this.#seq;
    return this.#transport.postTo?.(w, message) ?? false;
  }

  #post = (message: Outgoing): void => {
    if (this.#closed) return;
    (message as BusMessage).w = this.workerId;
    (message as BusMessage).i = this.incarnation;
    (message as BusMessage).s = ++this.#seq;
    this.#transport.post(message);
  };

  /** The transport says worker `w` died: its figures go, and gathers stop waiting for it. */
  #gone = (w: number): void => {
    if (this.#closed) return;
    this.#heard.delete(w);
    this.#relay.gone(w);
    if (this.#peers.drop(w)) this.#gatherer.peerLeft(w);
  };

  #schedule = (): void => {
    if (this.#flushTimer === undefined && !this.#closed) {
      this.#flushTimer = setTimeout(this.#flush, 0);
    }
  };

  /**
   * Posts what changed this turn and the pushes it took, one message each:
   * few messages keep a busy receiver within a `BroadcastChannel`'s 256,
   * and cost fewer clones over any transport. With nobody
   * to tell, the figures are still taken.
   */
  #flush = (): void => {
    this.#flushTimer = undefined;
    const delta = this.#local?.take();
    if (delta !== undefined && this.#peers.size > 0) this.#post({ t: "delta", delta });
    const pushes = this.#relay.take();
    if (pushes !== undefined) this.#post({ t: "push", pushes });
    this.#relay.flushRoutes();
  };

  /** Posts this turn's messages now, before what the caller sends next. */
  #flushNow(): void {
    clearTimeout(this.#flushTimer);
    this.#flush();
  }

  #onMessage(data: unknown): void {
    if (this.#closed || !isBusMessage(data)) return;
    const m = data;
    if (m.w === this.workerId && m.i === this.incarnation) return;
    if (isDirected(m)) {
      this.#relay.directed(m, this.incarnation);
      return;
    }
    this.#count(m.w, m.i, m.s);
    const peers = this.#peers;
    switch (m.t) {
      case "hello":
        peers.replace(m.w, m.i, m.snap);
        this.#relay.hello(m.w);
        if (this.#local !== undefined) {
          this.#post({ t: "snap", to: m.i, snap: this.#local.snapshot() });
        }
        return;
      case "snap":
        if (m.to === this.incarnation) peers.replace(m.w, m.i, m.snap);
        return;
      case "bye":
        if (peers.drop(m.w, m.i)) this.#gatherer.peerLeft(m.w);
        if (this.#heard.get(m.w)?.i === m.i) this.#heard.delete(m.w);
        this.#relay.gone(m.w);
        return;
      case "ask":
        void this.#gatherer.onAsk(m.id, m.topic, m.i);
        return;
      case "reply":
        if (m.to === this.incarnation) this.#gatherer.onReply(m.w, m.id, m.ok, m.value);
        return;
    }
    // A worker heard of before its hello (or a newer start of it): ask everyone anew.
    if (!peers.knows(m.w, m.i)) {
      peers.touch(m.w, m.i);
      if (this.#local !== undefined) this.#post({ t: "hello", snap: this.#local.snapshot() });
    }
    if (m.t === "delta") {
      peers.apply(m.w, m.i, m.delta);
      if (m.delta.keys.length > 0) this.#replaced(m.w, m.delta.keys);
    } else if (m.t === "push") { for (const push of m.pushes) this.#relay.received(m.w, push); }
  }

  /**
   * Notes a peer's message number. A gap means a `BroadcastChannel` dropped
   * messages (this worker fell behind; a lossless transport never gaps): counted, logged now and then, and answered
   * with a hello, so that every peer sends its figures whole again. Pushes
   * lost with it are gone.
   */
  #count(w: number, i: string, s: number): void {
    const last = this.#heard.get(w);
    if (last === undefined || last.i !== i) {
      this.#heard.set(w, { i, s });
      return;
    }
    const gap = s - last.s - 1;
    last.s = s;
    if (gap === 0) return;
    this.#lost += gap;
    this.#relay.lost();
    const now = Date.now();
    if (now - this.#lostLoggedAt >= _LOST_LOG_MS) {
      this.#lostLoggedAt = now;
      this.#logger.warn("Lost bus messages: this worker fell behind the channel", {
        from: w,
        lost: this.#lost,
      });
    }
    if (this.#local !== undefined) this.#post({ t: "hello", snap: this.#local.snapshot() });
  }

  /** Closes this worker's connections that a newer one with the same key replaced on worker `w`. */
  #replaced(w: number, keys: [string, number][]): void {
    const hub = this.#hub;
    const local = this.#local;
    if (hub === undefined || local === undefined) return;
    for (const [key, at] of keys) {
      const ch = hub.channel(key);
      if (ch === undefined) continue;
      const mine = local.openedAt(key);
      if (mine < at || (mine === at && this.workerId < w)) ch.close(_REPLACED);
    }
  }
}
