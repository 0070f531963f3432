/** Options of a {@linkcode WriteScheduler}. */
export interface WriteSchedulerOptions {
  /**
   * Writes in flight at most; the rest wait their turn in arrival order.
   * Default 128.
   */
  concurrency?: number;
  /**
   * A write still in flight after this many milliseconds (a peer that does
   * not read, its socket buffer full) stops holding a place, so that stalled
   * peers cannot stop everyone else. `Infinity` turns this off and with it
   * the scheduler's one timer. Default 50.
   */
  stallMs?: number;
  /**
   * Turns started at most between two visits of the event loop. Default 8.
   *
   * Why small: while a Deno process is never idle, its I/O (sockets that
   * became readable, new requests to the push API) is only polled every 61
   * event-loop turns (tokio's `event_interval`). Measured with 10,000
   * members pushed to as fast as the API takes pushes: 128 writes per turn
   * left push requests waiting ~120 ms to be read and the API took 33
   * pushes/s; 8 per turn, ~8 ms and 413 pushes/s (4.1 million
   * deliveries/s).
   */
  burst?: number;
  /** Hears of each write let go of its place as stalled. */
  onStall?: () => void;
}

/** What the scheduler runs: something with a queue it can drain in turns. */
export interface WriteTurn {
  /**
   * Writes what is queued, with one write, and calls
   * {@linkcode WriteScheduler.done} once that write has completed or failed.
   * Never throws.
   */
  _turn(scheduler: WriteScheduler): void;
  /** @internal The scheduler's slot for this writer while it holds a place; -1 otherwise. */
  _slot: number;
  /**
   * @internal When the current turn began, in `performance.now()`
   * milliseconds read once per visit of the line; the writer may set it to
   * -1 once its write has ended.
   */
  _turnAt: number;
}

/** A {@linkcode WriteTurn} that hands its write to {@linkcode WriteScheduler.settle}. */
export interface SettledWriteTurn extends WriteTurn {
  /**
   * Called once the write given to `settle` has completed (`ok`) or failed;
   * `refused`: the write resolved `true`, the socket took only part of it at
   * first. Never throws.
   */
  _written(scheduler: WriteScheduler, ok: boolean, refused: boolean): void;
}

/** Carries one write's end back to its writer; reused, so a write makes no closures. */
interface _Ticket {
  writer: SettledWriteTurn | undefined;
  readonly ok: (refused: unknown) => void;
  readonly fail: () => void;
}

/**
 * Runs the writes of many connections through one first-in first-out line
 * with a bounded number in flight.
 *
 * Why: a Deno process that starts thousands of socket writes at once (one
 * promise each, as a push to a big room would) spends about twice the CPU
 * per write of one that keeps a hundred or so in flight, and its op driver
 * completes them in no fair order: measured on loopback with 10,000
 * connections, some writes waited seconds while others went out many times.
 * In line, every connection with something queued gets one write per round,
 * and a connection that waited carries everything queued meanwhile in that
 * one write, so the busier the server, the more each write carries. Few
 * turns start per visit of the event loop (`burst`), so that the push API
 * and client reads are served while a round to 10,000 members is under way.
 *
 * A writer joins with {@linkcode WriteScheduler.enqueue}; on its turn the
 * scheduler calls its `_turn`, which writes and reports back with
 * {@linkcode WriteScheduler.done}. A writer that has more to write after its
 * turn enqueues again, at the back.
 *
 * @example
 * ```ts
 * import { WriteScheduler, type WriteTurn } from "./write_scheduler.ts";
 *
 * const order: string[] = [];
 * const writer = (name: string): WriteTurn => ({
 *   _slot: -1,
 *   _turnAt: 0,
 *   _turn(scheduler) {
 *     order.push(name);
 *     queueMicrotask(() => scheduler.done(this));
 *   },
 * });
 * using scheduler = new WriteScheduler({ concurrency: 1 });
 * scheduler.enqueue(writer("a"));
 * scheduler.enqueue(writer("b"));
 * await new Promise((resolve) => setTimeout(resolve, 0));
 * console.log(order); // ["a", "b"]
 * ```
 */
export class WriteScheduler implements Disposable {
  #concurrency: number;
  #burstLimit: number;
  #stallMs: number;
  /** Writers waiting for a turn: a ring buffer, grown by doubling. */
  #ring: (WriteTurn | undefined)[] = new Array(64);
  #head = 0;
  #size = 0;
  /** Writers holding a place; each knows its index (`_slot`). */
  #slots: WriteTurn[] = [];
  #pumpQueued = false;
  /** Turns started since the event loop last came round; above 0, a reset is due (see `#pump`). */
  #burst = 0;
  /** Set while the pump starts turns: a turn that ends at once must not pump again inside. */
  #pumping = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The clock, read once per visit of the line: turns started together share it. */
  #now = 0;
  #closed = false;
  #detached = 0;
  /** Tickets of writes that have ended, for the next writes (at most `concurrency` kept). */
  #tickets: _Ticket[] = [];
  #onStall: (() => void) | undefined;

  /**
   * Creates a scheduler.
   *
   * @param options Concurrency and the stall limit.
   */
  constructor(options: WriteSchedulerOptions = {}) {
    const concurrency = options.concurrency ?? 128;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`Write concurrency must be a positive integer: ${concurrency}`);
    }
    const burst = options.burst ?? 8;
    if (!(burst === Infinity || (Number.isSafeInteger(burst) && burst >= 1))) {
      throw new RangeError(`Write burst must be a positive integer or Infinity: ${burst}`);
    }
    this.#burstLimit = burst;
    const stallMs = options.stallMs ?? 50;
    if (!(stallMs > 0)) throw new RangeError(`Stall limit must be positive: ${stallMs}`);
    this.#concurrency = concurrency;
    this.#stallMs = stallMs;
    this.#onStall = options.onStall;
  }

  /** Writers waiting for a turn. */
  get waiting(): number {
    return this.#size;
  }

  /** Writes in flight that hold a place. */
  get inFlight(): number {
    return this.#slots.length;
  }

  /** Writes that stalled past the limit and were let go of their place, since start. */
  get stalled(): number {
    return this.#detached;
  }

  /**
   * Puts a writer at the back of the line. The line moves after the current
   * task's microtasks, so that everything queued in the same tick (a room
   * push to every member) goes out with each writer's one write.
   */
  enqueue(writer: WriteTurn): void {
    if (this.#size === this.#ring.length) this.#grow();
    this.#ring[(this.#head + this.#size) % this.#ring.length] = writer;
    this.#size++;
    if (!this.#pumpQueued) {
      this.#pumpQueued = true;
      queueMicrotask(this.#pump);
    }
  }

  /** Called by a writer when the write of its turn has completed or failed. */
  done(writer: WriteTurn): void {
    const i = writer._slot;
    if (i < 0) return; // let go of earlier as stalled
    writer._slot = -1;
    const last = this.#slots.pop()!;
    if (last !== writer) {
      this.#slots[i] = last;
      last._slot = i;
    }
    if (this.#size > 0 && !this.#pumping) this.#pump();
  }

  /**
   * Calls `writer._written(this, ok)` once `write` has settled. The same as
   * `write.then(() => …, () => …)` but without two closures per write: the
   * callbacks come from a pool of tickets, one per write in flight.
   */
  settle(writer: SettledWriteTurn, write: Promise<unknown>): void {
    const ticket = this.#tickets.pop() ?? this.#ticket();
    ticket.writer = writer;
    write.then(ticket.ok, ticket.fail);
  }

  #ticket(): _Ticket {
    const ticket: _Ticket = {
      writer: undefined,
      ok: (refused) => this.#settled(ticket, true, refused === true),
      fail: () => this.#settled(ticket, false, false),
    };
    return ticket;
  }

  #settled(ticket: _Ticket, ok: boolean, refused: boolean): void {
    const writer = ticket.writer!;
    ticket.writer = undefined;
    // Stalled writes may hold many tickets for a while; only a line's worth is kept.
    if (this.#tickets.length < this.#concurrency) this.#tickets.push(ticket);
    writer._written(this, ok, refused);
  }

  /** Stops the stall timer. Writers still in line are still run as places free up. */
  close(): void {
    this.#closed = true;
    this.#disarm();
  }

  /** Same as {@linkcode WriteScheduler.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #pump = (): void => {
    this.#pumpQueued = false;
    this.#pumping = true;
    const slots = this.#slots;
    if (this.#size > 0) this.#now = performance.now();
    // A write to a socket with room completes at once, and its continuation
    // starts the next turn: unchecked, the event loop would spend a long
    // time per turn, and Deno polls for I/O only every 61 turns while busy
    // (see `burst`). So few turns start per visit of the event loop.
    while (
      this.#size > 0 && slots.length < this.#concurrency && this.#burst < this.#burstLimit
    ) {
      // The first turn of a burst books its reset: a task of its own, after the
      // event loop has polled for I/O. Not `setTimeout(fn, 0)`: chained, that is
      // clamped to milliseconds.
      if (this.#burst++ === 0) setImmediate(this.#resetBurst);
      const writer = this.#ring[this.#head]!;
      this.#ring[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.#ring.length;
      this.#size--;
      writer._slot = slots.length;
      writer._turnAt = this.#now;
      slots.push(writer);
      try {
        writer._turn(this);
      } catch {
        // A turn never throws; if one did, its place must not be lost.
        this.done(writer);
      }
    }
    this.#pumping = false;
    if (this.#size > 0 && slots.length === this.#concurrency) this.#arm();
    else this.#disarm();
  };

  #resetBurst = (): void => {
    this.#burst = 0;
    if (this.#size > 0) this.#pump();
  };

  #grow(): void {
    const old = this.#ring;
    const ring: (WriteTurn | undefined)[] = new Array(old.length * 2);
    for (let i = 0; i < this.#size; i++) ring[i] = old[(this.#head + i) % old.length];
    this.#ring = ring;
    this.#head = 0;
  }

  /** Every place is taken and writers wait: check for stalled writes in a while. */
  #arm(): void {
    if (this.#timer !== undefined || this.#closed || this.#stallMs === Infinity) return;
    this.#timer = setTimeout(this.#checkStalls, this.#stallMs);
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #checkStalls = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    const slots = this.#slots;
    for (let i = slots.length - 1; i >= 0; i--) {
      const writer = slots[i]!;
      // Not yet writing for the whole limit.
      if (now - writer._turnAt < this.#stallMs) continue;
      // Still writing, but no longer holding a place; `done` will ignore it.
      writer._slot = -1;
      const last = slots.pop()!;
      if (last !== writer) {
        slots[i] = last;
        last._slot = i;
      }
      this.#detached++;
      this.#onStall?.();
    }
    this.#pump();
  };
}
