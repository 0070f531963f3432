/**
 * The admin page's last two minutes, kept on the server so that a reload
 * draws them at once: one sample a second, in a ring, by one timer per
 * server (not per page or connection).
 *
 * @module
 */
import type { Comet } from "../server/comet.ts";

/** One second of the admin page's charts. Counters are totals since start. */
export interface AdminSample {
  /** When it was taken, in milliseconds since the epoch. */
  time: number;
  /** Connections open. */
  connections: number;
  /** Rooms with members. */
  rooms: number;
  /** Pushes accepted so far, every kind together. */
  pushes: number;
  /** Frames queued to connections by pushes so far. */
  deliveries: number;
}

/** Options for {@linkcode AdminHistory}. */
export interface AdminHistoryOptions {
  /** Sampling stops for good when it aborts; without one, {@linkcode AdminHistory.start} does nothing. */
  signal?: AbortSignal;
  /** Samples kept. Default 120. */
  size?: number;
  /** Milliseconds between samples. Default 1000. */
  interval?: number;
}

/**
 * A ring of {@linkcode AdminSample}s of one hub. Sampling starts with
 * {@linkcode AdminHistory.start} (the admin handler calls it on the page's
 * first request, so a server nobody watches runs no timer) and ends when the
 * signal aborts, which bounds the timer's life.
 *
 * @example
 * ```ts
 * import { Comet } from "../server/comet.ts";
 * import { AdminHistory } from "./admin_history.ts";
 *
 * const comet = new Comet();
 * const stop = new AbortController();
 * const history = new AdminHistory(comet, { signal: stop.signal });
 * history.start();
 * console.log(history.samples().length); // 1: the first sample is taken at once
 * stop.abort();
 * await comet.close(0);
 * ```
 */
export class AdminHistory {
  readonly #comet: Comet;
  readonly #signal: AbortSignal | undefined;
  readonly #ring: (AdminSample | undefined)[];
  readonly #interval: number;
  #next = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Prepares the ring for `comet`; samples nothing yet.
   *
   * @throws {RangeError} When `size` or `interval` is not a positive integer.
   */
  constructor(comet: Comet, options: AdminHistoryOptions = {}) {
    const size = options.size ?? 120;
    const interval = options.interval ?? 1000;
    if (!(Number.isSafeInteger(size) && size > 0)) {
      throw new RangeError(`History size must be a positive integer: ${size}`);
    }
    if (!(Number.isSafeInteger(interval) && interval > 0)) {
      throw new RangeError(`History interval must be a positive integer: ${interval}`);
    }
    this.#comet = comet;
    this.#signal = options.signal;
    this.#ring = new Array(size).fill(undefined);
    this.#interval = interval;
  }

  /** Milliseconds between samples. */
  get interval(): number {
    return this.#interval;
  }

  /** Takes a sample now and one every interval until the signal aborts; later calls do nothing. */
  start(): void {
    const signal = this.#signal;
    if (this.#timer !== undefined || signal === undefined || signal.aborted) return;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), this.#interval);
    signal.addEventListener("abort", () => clearInterval(this.#timer), { once: true });
  }

  /** The samples kept, oldest first. */
  samples(): AdminSample[] {
    const out: AdminSample[] = [];
    const size = this.#ring.length;
    for (let i = 0; i < size; i++) {
      const sample = this.#ring[(this.#next + i) % size];
      if (sample !== undefined) out.push(sample);
    }
    return out;
  }

  #sample(): void {
    const comet = this.#comet;
    const stats = comet.stats;
    const p = stats.pushes;
    this.#ring[this.#next] = {
      time: Date.now(),
      connections: comet.connections,
      rooms: comet.rooms.size,
      pushes: p.keys + p.mids + p.room + p.all,
      deliveries: stats.deliveries,
    };
    this.#next = (this.#next + 1) % this.#ring.length;
  }
}

/**
 * The histories of a node's workers as one: aligned from the newest (the
 * workers sample at the same pace), summed, timed by the first list's.
 *
 * @example
 * ```ts
 * import { mergeHistories } from "./admin_history.ts";
 *
 * const at = (time: number, connections: number) =>
 *   ({ time, connections, rooms: 1, pushes: 0, deliveries: 0 });
 * const merged = mergeHistories([[at(1000, 2), at(2000, 3)], [at(2010, 5)]]);
 * console.log(merged.map((s) => s.connections)); // [2, 8]
 * ```
 */
export function mergeHistories(lists: readonly (readonly AdminSample[])[]): AdminSample[] {
  const first = lists[0] ?? [];
  return first.map((own, i) => {
    const sum = { ...own };
    const fromEnd = first.length - i;
    for (let w = 1; w < lists.length; w++) {
      const other = lists[w]!;
      const sample = other[other.length - fromEnd];
      if (sample === undefined) continue;
      sum.connections += sample.connections;
      sum.rooms += sample.rooms;
      sum.pushes += sample.pushes;
      sum.deliveries += sample.deliveries;
    }
    return sum;
  });
}
