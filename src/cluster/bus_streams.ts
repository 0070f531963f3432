/**
 * Streams across the workers of one process (docs/protocol.md, section 8):
 * who orders each stream, and how a worker learns where a stream it does
 * not order stands. A `BusCluster` keeps one {@linkcode BusStreams} once the
 * server asks it for a history (streams on); with streams off it keeps none
 * and pushes travel as they always did.
 *
 * Two ways, by what the bus can promise:
 *
 * - **Owned** (`--workers N`: a lossless `PortMesh` and the worker count):
 *   each stream has one sequencer, the worker {@linkcode streamOwner} names
 *   (a hash of the stream's name modulo N). A room, mids or all push taken
 *   by any worker travels unstamped to its owner (a mids push split per
 *   owner); the owner's hub stamps it through this history and delivers it;
 *   the owner then posts the stamped push to every other worker, which
 *   delivers it as stamped. A `MessagePort` keeps each pair's messages in
 *   order, so every worker gets each stream's pushes in offset order. A
 *   restarted worker keeps its number, so it owns the same streams; its
 *   memory is gone, so they start again under new epochs: clients resuming
 *   there are told "not recovered" (`epoch`), which is the truth.
 * - **Per isolate** (the edge's `BroadcastChannel` under `deno serve
 *   --parallel`, or a bus given no worker count): each isolate orders the
 *   streams of what it delivers itself. Pushes cross unstamped and every
 *   receiver stamps them in its own history, so a client resumes only on
 *   the isolate it left (elsewhere: `epoch`). A `BroadcastChannel` drops
 *   messages of a receiver that falls behind; the bus notices the gap and
 *   calls {@linkcode BusStreams.reset}: every stream of the isolate starts
 *   again under a new epoch, so a client sees its stream break (section 8.4)
 *   instead of a silent hole. No cross-isolate guarantee is claimed there.
 *
 * @module
 */
import type { LogFields, Logger } from "../log.ts";
import { MemoryHistory } from "../server/memory_history.ts";
import type { Push } from "../server/push.ts";
import {
  ALL_STREAM,
  type HistoryFigures,
  type HistoryLimits,
  midStream,
  roomStream,
  type StreamAnswer,
  type StreamHistory,
  type StreamQuery,
  type StreamStamp,
} from "../server/streams.ts";
import type { Outgoing } from "./bus_gather.ts";
import { OwnerUnavailableError } from "./bus_owner_unavailable_error.ts";
import { streamOwner } from "./stream_owner.ts";

/** Unstamped pushes kept for one owner that cannot be reached yet; older ones go past it. */
const _MAX_WAITING = 10_000;
/** Dropped waiting pushes are logged at most this often, in ms. */
const _DROPPED_LOG_MS = 10_000;

/**
 * What {@linkcode BusStreams} needs of the bus it serves.
 *
 * @example
 * ```ts
 * import type { BusStreamsLink } from "./bus_streams.ts";
 * import { silentLogger } from "../log.ts";
 *
 * const alone: BusStreamsLink = {
 *   workerId: 0,
 *   send: () => false,
 *   heard: () => false,
 *   flush: () => {},
 *   schedule: () => {},
 *   logger: () => silentLogger,
 * };
 * ```
 */
export interface BusStreamsLink {
  /** This worker's number. */
  readonly workerId: number;
  /** Sends `message` to worker `w` alone, behind what was posted to it before; false: no way now. */
  send(w: number, message: Outgoing): boolean;
  /** Whether worker `w`'s current start has been heard on the bus (its bus listens). */
  heard(w: number): boolean;
  /** Posts every push this worker took so far to the others now, instead of at the turn's end. */
  flush(): void;
  /** Has the bus flush at the end of this turn. */
  schedule(): void;
  /** Where the streams log now. */
  logger(): Logger;
}

/**
 * Options for {@linkcode BusStreams}.
 *
 * @example
 * ```ts
 * import type { BusStreamsOptions } from "./bus_streams.ts";
 * const options: BusStreamsOptions = { limits: { size: 1000, ttl: 120_000 }, workers: 4, timeout: 3_000 };
 * console.log(options.workers); // 4
 * ```
 */
export interface BusStreamsOptions {
  /** How much each owned stream keeps. */
  limits: HistoryLimits;
  /** The process's worker count: streams are owned. Absent: each isolate orders its own. */
  workers?: number;
  /** How long an answer from another worker may take, in ms. */
  timeout: number;
}

interface _Ask {
  readonly w: number;
  readonly n: number;
  readonly resolve: (answers: StreamAnswer[]) => void;
  readonly reject: (err: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/**
 * One worker's side of the streams of a bus: the history its hub stamps
 * through (the streams it orders) and asks at joins (any stream), and the
 * unstamped pushes on their way to other owners. See the module
 * documentation for the two ways.
 *
 * @example
 * ```ts
 * import { silentLogger } from "../log.ts";
 * import { BusStreams } from "./bus_streams.ts";
 *
 * const link = {
 *   workerId: 0,
 *   send: () => false,
 *   heard: () => false,
 *   flush: () => {},
 *   schedule: () => {},
 *   logger: () => silentLogger,
 * };
 * const streams = new BusStreams(link, { limits: { size: 100, ttl: 60_000 }, timeout: 3_000 });
 * const stamp = streams.append("room:live://1", 1000, new Uint8Array([1]));
 * console.log(stamp?.offset); // 1
 * streams.close();
 * ```
 */
export class BusStreams implements StreamHistory {
  /** The process's worker count when streams are owned; undefined: per isolate. */
  readonly workers: number | undefined;
  #link: BusStreamsLink;
  #limits: HistoryLimits;
  #timeout: number;
  #memory: MemoryHistory;
  /** What histories this one replaced evicted: counters run on across a reset. */
  #evictedBefore = { pushes: 0, streams: 0 };
  /** Unstamped pushes to send to each owner at the turn's end (or once it can be reached). */
  #routes = new Map<number, Push[]>();
  #dropped = 0;
  #droppedLoggedAt = -Infinity;
  #asks = new Map<number, _Ask>();
  /** Questions for owners not heard from yet (starting): sent on their hello, or timed out. */
  #unsent = new Map<number, { id: number; queries: StreamQuery[] }[]>();
  /** Owners that left: a question to one fails at once rather than wait for a restart. */
  #gone = new Set<number>();
  #next = 0;
  #strayLogged = false;
  #closed = false;

  /**
   * @throws {RangeError} When `workers` is not a positive integer above the
   * link's worker number, or `timeout` is not positive.
   */
  constructor(link: BusStreamsLink, options: BusStreamsOptions) {
    const { limits, workers, timeout } = options;
    if (workers !== undefined && (!Number.isSafeInteger(workers) || workers <= link.workerId)) {
      throw new RangeError(`Workers must be an integer above the worker id: ${workers}`);
    }
    if (!(timeout > 0)) throw new RangeError(`Answer timeout must be positive: ${timeout}`);
    this.#link = link;
    this.#limits = { ...limits };
    this.workers = workers;
    this.#timeout = timeout;
    this.#memory = this.#history();
  }

  /** The worker that orders `stream`: this one when each isolate orders its own. */
  owner(stream: string): number {
    return this.workers === undefined ? this.#link.workerId : streamOwner(stream, this.workers);
  }

  /** The streams this worker orders: their count, pushes and bytes kept. */
  figures(): HistoryFigures {
    const figures = this.#memory.figures();
    figures.evictedPushes = (figures.evictedPushes ?? 0) + this.#evictedBefore.pushes;
    figures.evictedStreams = (figures.evictedStreams ?? 0) + this.#evictedBefore.streams;
    return figures;
  }

  /**
   * Stamps a push of a stream this worker orders. Another worker's stream
   * never gets here when the bus routes right: it gets `undefined` (the push
   * goes out unstamped), and the first such is logged as the bug it is.
   */
  append(stream: string, op: number, body: Uint8Array): StreamStamp | undefined {
    if (this.owner(stream) !== this.#link.workerId) {
      if (!this.#strayLogged) {
        this.#strayLogged = true;
        this.#link.logger().error("A push to another worker's stream reached this hub unstamped", {
          stream,
          owner: this.owner(stream),
          worker: this.#link.workerId,
        });
      }
      return undefined;
    }
    return this.#memory.append(stream, op, body);
  }

  /**
   * Answers the streams this worker orders at once; the others are asked of
   * their owners (one `hist` per owner), and the answer comes when all have
   * replied. Rejects with {@linkcode OwnerUnavailableError} when an owner is
   * not running, leaves, or does not reply within the timeout.
   */
  answer(queries: readonly StreamQuery[]): StreamAnswer[] | Promise<StreamAnswer[]> {
    const self = this.#link.workerId;
    let away: Map<number, number[]> | undefined;
    const mine: number[] = [];
    for (const [i, query] of queries.entries()) {
      const w = this.owner(query.stream);
      if (w === self) mine.push(i);
      else {
        away ??= new Map();
        const list = away.get(w);
        if (list === undefined) away.set(w, [i]);
        else list.push(i);
      }
    }
    if (away === undefined) return this.#memory.answer(queries);
    const out: StreamAnswer[] = new Array(queries.length);
    const local = this.#memory.answer(mine.map((i) => queries[i]!));
    for (const [j, i] of mine.entries()) out[i] = local[j]!;
    const asked = [...away].map(([w, list]) =>
      this.#ask(w, list.map((i) => queries[i]!)).then((answers) => {
        for (const [j, i] of list.entries()) out[i] = answers[j]!;
      })
    );
    return Promise.all(asked).then(() => out);
  }

  /**
   * Takes a push entering this worker: returns the part this worker orders
   * (to deliver and stamp now) and queues the rest, unstamped, for their
   * owners. A keys push is returned whole: keys are no stream.
   */
  take(push: Push): Push | undefined {
    const self = this.#link.workerId;
    if (push.kind === "keys" || this.workers === undefined) return push;
    if (push.kind !== "mids") {
      const w = this.owner(push.kind === "room" ? roomStream(push.room) : ALL_STREAM);
      if (w === self) return push;
      this.#route(w, push);
      return undefined;
    }
    const owners = push.mids.map((mid) => this.owner(midStream(mid)));
    const first = owners[0];
    if (first === undefined || owners.every((w) => w === first)) {
      if (first === undefined || first === self) return push;
      this.#route(first, push);
      return undefined;
    }
    const parts = new Map<number, number[]>();
    for (const [i, w] of owners.entries()) {
      const mids = parts.get(w);
      if (mids === undefined) parts.set(w, [push.mids[i]!]);
      else mids.push(push.mids[i]!);
    }
    let own: Push | undefined;
    for (const [w, mids] of parts) {
      const part: Push = { kind: "mids", op: push.op, mids, body: push.body };
      if (w === self) own = part;
      else this.#route(w, part);
    }
    return own;
  }

  /** Whether pushes wait for worker `w`. */
  waitsFor(w: number): boolean {
    return this.#routes.has(w);
  }

  /**
   * Sends each owner that can be reached the pushes queued for it, one
   * `route` message each; the others keep waiting (for a worker not started
   * yet, or restarting: its hello schedules the next try).
   */
  flushRoutes(): void {
    for (const [w, pushes] of this.#routes) {
      if (this.#link.heard(w) && this.#link.send(w, { t: "route", pushes })) this.#routes.delete(w);
    }
    for (const [w, asks] of this.#unsent) {
      if (!this.#link.heard(w)) continue;
      this.#unsent.delete(w);
      // Behind the routes just sent: the owner stamps them before it answers.
      for (const { id, queries } of asks) {
        if (this.#asks.has(id)) this.#send(w, id, queries);
      }
    }
  }

  /**
   * Answers another worker's `hist` about streams this worker orders.
   *
   * Why the reply cannot overtake a push: every push this worker stamped
   * before answering is either posted already or waits in this turn's
   * batch, so the batch is posted first; then the reply goes to the asker
   * on the same port, which delivers in order. So the asker gets every push
   * with an offset up to the answer's before the answer, and every later
   * one after it: its hub holds a joining client's pushes until the answer,
   * drops those the answer covers (offset at most the answer's, which the
   * replay carries) and sends the rest live, with no gap and no duplicate.
   */
  onAsk(from: number, to: string, id: number, queries: StreamQuery[]): void {
    let reply: Outgoing;
    const stray = queries.find((q) => this.owner(q.stream) !== this.#link.workerId);
    if (stray !== undefined) {
      reply = { t: "hist-reply", to, id, error: `Not this worker's stream: ${stray.stream}` };
    } else {
      try {
        reply = { t: "hist-reply", to, id, answers: this.#memory.answer(queries) };
      } catch (err) {
        reply = {
          t: "hist-reply",
          to,
          id,
          error: err instanceof Error ? err.message : String(err),
        };
      }
    }
    this.#link.flush();
    this.#link.send(from, reply);
  }

  /** Takes an owner's reply to one of this worker's asks. */
  onReply(id: number, answers: StreamAnswer[] | undefined, error: string | undefined): void {
    const ask = this.#asks.get(id);
    if (ask === undefined) return;
    this.#settle(id);
    if (answers !== undefined && answers.length === ask.n) ask.resolve(answers);
    else {
      const why = error ?? `${answers?.length ?? 0} answers to ${ask.n} questions`;
      ask.reject(
        new OwnerUnavailableError(`Stream owner could not answer: worker ${ask.w}: ${why}`),
      );
    }
  }

  /** Worker `w` left or died: what was asked of it will not be answered. */
  peerGone(w: number): void {
    this.#gone.add(w);
    for (const [id, ask] of this.#asks) {
      if (ask.w !== w) continue;
      this.#settle(id);
      ask.reject(new OwnerUnavailableError(`Stream owner left before answering: worker ${w}`));
    }
  }

  /**
   * Forgets every stream this isolate ordered: they start again under new
   * epochs. For a bus that lost messages, when each isolate orders its own.
   */
  reset(): void {
    const { evictedPushes = 0, evictedStreams = 0 } = this.#memory.figures();
    this.#evictedBefore.pushes += evictedPushes;
    this.#evictedBefore.streams += evictedStreams;
    this.#memory = this.#history();
  }

  #history(): MemoryHistory {
    const warn = (message: string, fields: LogFields) => this.#link.logger().warn(message, fields);
    return new MemoryHistory({ ...this.#limits, warn });
  }

  /** Rejects what is asked and drops what waits for an owner. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [id, ask] of this.#asks) {
      this.#settle(id);
      ask.reject(
        new OwnerUnavailableError(`Worker bus closed before the owner answered: worker ${ask.w}`),
      );
    }
    this.#routes.clear();
    this.#unsent.clear();
  }

  #ask(w: number, queries: StreamQuery[]): Promise<StreamAnswer[]> {
    if (this.#closed) {
      return Promise.reject(new OwnerUnavailableError(`Worker bus is closed: worker ${w}`));
    }
    const heard = this.#link.heard(w);
    if (!heard && this.#gone.has(w)) {
      return Promise.reject(new OwnerUnavailableError(`Stream owner is not running: worker ${w}`));
    }
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#asks.delete(id);
        reject(
          new OwnerUnavailableError(
            `Stream owner did not answer in ${this.#timeout} ms: worker ${w}`,
          ),
        );
      }, this.#timeout);
      this.#asks.set(id, { w, n: queries.length, resolve, reject, timer });
      // An owner still starting answers once it says hello, within the same timeout.
      if (!heard) {
        let asks = this.#unsent.get(w);
        if (asks === undefined) this.#unsent.set(w, asks = []);
        asks.push({ id, queries });
      } else this.#send(w, id, queries);
    });
  }

  #send(w: number, id: number, queries: StreamQuery[]): void {
    if (this.#link.send(w, { t: "hist", id, queries })) return;
    const ask = this.#asks.get(id);
    this.#settle(id);
    ask?.reject(new OwnerUnavailableError(`Stream owner is not running: worker ${w}`));
  }

  #settle(id: number): void {
    const ask = this.#asks.get(id);
    if (ask === undefined) return;
    clearTimeout(ask.timer);
    this.#asks.delete(id);
  }

  #route(w: number, push: Push): void {
    let queue = this.#routes.get(w);
    if (queue === undefined) this.#routes.set(w, queue = []);
    queue.push(push);
    if (queue.length > _MAX_WAITING) {
      queue.shift();
      this.#dropped++;
      const now = Date.now();
      if (now - this.#droppedLoggedAt >= _DROPPED_LOG_MS) {
        this.#droppedLoggedAt = now;
        this.#link.logger().warn("Dropped pushes waiting for their stream's owner to start", {
          owner: w,
          dropped: this.#dropped,
        });
      }
    }
    this.#link.schedule();
  }
}
