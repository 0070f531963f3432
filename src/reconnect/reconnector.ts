/**
 * One reconnect lifecycle for clients that hold one connection at a time
 * and replace it when it drops: the goim client and the Redis client both
 * stand on it.
 *
 * @module
 */
import { reconnectDelay, type ReconnectOptions } from "./backoff.ts";

/**
 * Where a {@linkcode Reconnector} stands: `connecting` until the first
 * connection is up, `Up` (the client's own word: `open`, `ready`) while one
 * is, `reconnecting` between a dropped connection and the next one being up,
 * `closed` for good.
 */
export type ReconnectState<Up extends string> = "connecting" | Up | "reconnecting" | "closed";

/** What {@linkcode Reconnector.onState} listeners get. */
export interface ReconnectStateChange<Up extends string> {
  /** The new state. */
  state: ReconnectState<Up>;
  /** The state before. */
  previous: ReconnectState<Up>;
  /** Why the connection was lost or the client closed, where there was a reason. */
  reason?: Error;
}

/** The little a {@linkcode Reconnector} needs of a connection. */
export interface ReconnectorConnection {
  /** Resolves with why the connection ended, once it has. */
  readonly closed: Promise<Error>;
  /** Closes the connection; idempotent. */
  close(reason: Error): void;
}

/**
 * What a {@linkcode Reconnector} is told: its timings, and what to call as
 * connections come and go. Durations are in milliseconds.
 */
export interface ReconnectorOptions<C extends ReconnectorConnection, Up extends string> {
  /** The state's name while a connection is up, e.g. `open` or `ready`. */
  upState: Up;
  /** Backoff between attempts, from `reconnectPolicy`; `false` closes on the first drop. */
  policy: Required<ReconnectOptions> | false;
  /** How long one call of `connect` may take before its signal aborts. */
  connectTimeout: number;
  /** Retry a failed first connection with the backoff instead of closing. Default `false`. */
  retryFirst?: boolean;
  /**
   * Turn `closed` as soon as closing starts, before `teardown`; by default
   * only once `teardown` has finished.
   */
  closedFirst?: boolean;
  /** Aborting closes the reconnector with what `aborted` makes of the signal's reason. */
  signal?: AbortSignal;
  /**
   * One attempt: opens a connection and readies it (login, restored state).
   * Rejects when it cannot, and must give up when `signal` aborts (closing,
   * or `connectTimeout` passed), leaving nothing open behind.
   */
  connect(signal: AbortSignal): Promise<C>;
  /** Makes a new connection the current one, just before the state turns up. */
  attach?(conn: C): void;
  /** After the state turned up: `reconnected` is false for the first connection. */
  onUp?(conn: C, reconnected: boolean): void;
  /**
   * The connection that was up has ended. What it returns is awaited
   * before the backoff delay (to let the old connection finish).
   */
  onDown?(conn: C, reason: Error): Promise<void> | void;
  /**
   * Releases everything once closing has begun: reconnecting has stopped
   * and `ready` is rejected. `stopped` settles once the attempt or wait
   * under way has ended.
   */
  teardown(reason: Error, stopped: Promise<void>): Promise<void>;
  /** Whether a failed attempt must not be retried (a refused login). Default: none is. */
  final?(error: Error): boolean;
  /** The error an attempt's signal aborts with once `connectTimeout` has passed. */
  timedOut(ms: number): Error;
  /** What the reconnector closes with after `maxAttempts` failed attempts in a row. */
  gaveUp(attempts: number, last: Error): Error;
  /**
   * What aborting `signal` closes with, and what a still pending `ready`
   * rejects with when that is not the same.
   */
  aborted(signalReason: unknown): { reason: Error; ready?: unknown };
}

function _asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Runs the connect, drop, back off, reconnect loop of a client that holds
 * one connection at a time, and owns its state, its `ready` promise, its
 * listeners and its closing. What a connection is and how it logs in are
 * the client's, given as the `connect` and other hooks.
 *
 * The first failed attempt closes it (unless `retryFirst`), as does one
 * that `final` says must not be retried. Other failures are reported to
 * {@linkcode Reconnector.onError} and retried after
 * `reconnectDelay(failures, policy)`; a drop waits `reconnectDelay(0, policy)`.
 *
 * @example
 * ```ts
 * import { Reconnector } from "./reconnector.ts";
 * import { reconnectPolicy } from "./backoff.ts";
 *
 * let resolveClosed!: (reason: Error) => void;
 * const conn = {
 *   closed: new Promise<Error>((resolve) => resolveClosed = resolve),
 *   close: (reason: Error) => resolveClosed(reason),
 * };
 * const life = new Reconnector({
 *   upState: "open",
 *   policy: reconnectPolicy({ initialDelay: 10 }),
 *   connectTimeout: 1_000,
 *   connect: () => Promise.resolve(conn),
 *   teardown: async (reason, stopped) => {
 *     conn.close(reason);
 *     await stopped;
 *   },
 *   timedOut: (ms) => new Error(`Connecting timed out: ${ms} ms`),
 *   gaveUp: (n, last) => new Error(`Gave up after ${n} attempts: ${last.message}`),
 *   aborted: (reason) => ({ reason: new Error("Aborted", { cause: reason }) }),
 * });
 * life.start();
 * await life.ready;
 * console.log(life.state); // "open"
 * await life.close(new Error("Done"));
 * console.log(life.state); // "closed"
 * ```
 */
export class Reconnector<C extends ReconnectorConnection, Up extends string> {
  /** Settles once the first connection is up; rejects when closed before. */
  readonly ready: Promise<void>;
  #o: ReconnectorOptions<C, Up>;
  #state: ReconnectState<Up> = "connecting";
  #stop = new AbortController();
  #stateListeners = new Set<(change: ReconnectStateChange<Up>) => void>();
  #errorListeners = new Set<(error: Error) => void>();
  #resolveReady!: () => void;
  #rejectReady!: (reason: unknown) => void;
  #running: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;
  #started = false;

  /**
   * Checks the options; nothing happens until {@linkcode Reconnector.start}.
   *
   * @throws {RangeError} When `connectTimeout` is not a positive number.
   */
  constructor(options: ReconnectorOptions<C, Up>) {
    const timeout = options.connectTimeout;
    if (!(timeout > 0 && Number.isFinite(timeout))) {
      throw new RangeError(`Connect timeout must be a positive number: ${timeout}`);
    }
    this.#o = options;
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // Whoever never awaits `ready` must not get an unhandled rejection from it.
    this.ready.catch(() => {});
  }

  /** The state now; see {@linkcode ReconnectState}. */
  get state(): ReconnectState<Up> {
    return this.#state;
  }

  /** Whether closing has begun (the state may not say `closed` yet). */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Starts connecting, or closes at once when the signal is already aborted.
   * Call it once the client is ready for the hooks.
   *
   * @throws {TypeError} When called twice.
   */
  start(): void {
    if (this.#started) throw new TypeError("Reconnector is already started");
    this.#started = true;
    const signal = this.#o.signal;
    if (signal?.aborted) {
      this.#abort();
      return;
    }
    signal?.addEventListener("abort", this.#abort, { once: true });
    this.#running = this.#run();
  }

  /** Calls `listener` on every state change. Returns a function that removes it. */
  onState(listener: (change: ReconnectStateChange<Up>) => void): () => void {
    this.#stateListeners.add(listener);
    return () => void this.#stateListeners.delete(listener);
  }

  /**
   * Calls `listener` with problems that have no caller to reject (failed
   * attempts, throwing state listeners, and whatever is passed to
   * {@linkcode Reconnector.report}). Returns a function that removes it.
   */
  onError(listener: (error: Error) => void): () => void {
    this.#errorListeners.add(listener);
    return () => void this.#errorListeners.delete(listener);
  }

  /** Hands `error` to every {@linkcode Reconnector.onError} listener. */
  report(error: Error): void {
    for (const listener of this.#errorListeners) {
      try {
        listener(error);
      } catch {
        // An error listener that throws has nowhere left to report to.
      }
    }
  }

  /**
   * Says at once that the connection that was up is gone, so that calls
   * made from here on see `reconnecting`; the loop would say so a moment
   * later. Nothing changes when it is not up, closing, or will not reconnect.
   */
  down(reason: Error): void {
    if (this.#state !== this.#o.upState || this.#o.policy === false) return;
    if (this.#stop.signal.aborted) return;
    this.#setState("reconnecting", reason);
  }

  /**
   * Closes for good: stops reconnecting, rejects a pending `ready` with
   * `readyReason`, runs `teardown` and settles in state `closed` with
   * `reason`. Idempotent: every call returns the same promise.
   */
  close(reason: Error, readyReason: unknown = reason): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    // Set before the shutdown runs: the listeners it calls at once (closedFirst) may close again.
    const closing = Promise.withResolvers<void>();
    this.#closing = closing.promise;
    this.#shutdown(reason, readyReason).then(closing.resolve, closing.reject);
    return closing.promise;
  }

  #abort = (): void => {
    const aborted = this.#o.aborted(this.#o.signal!.reason);
    void this.close(aborted.reason, "ready" in aborted ? aborted.ready : aborted.reason);
  };

  async #shutdown(reason: Error, readyReason: unknown): Promise<void> {
    this.#stop.abort(reason);
    this.#o.signal?.removeEventListener("abort", this.#abort);
    if (this.#o.closedFirst) this.#setState("closed", reason);
    this.#rejectReady(readyReason);
    await this.#o.teardown(reason, this.#running);
    this.#setState("closed", reason);
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    const policy = this.#o.policy;
    let first = true;
    let failures = 0;
    while (!stop.aborted) {
      let conn: C;
      try {
        conn = await this.#attempt();
      } catch (err) {
        if (stop.aborted) return;
        const error = _asError(err);
        if ((first && !this.#o.retryFirst) || this.#o.final?.(error)) {
          void this.close(error);
          return;
        }
        this.report(error);
        failures++;
        if (policy === false || failures >= policy.maxAttempts) {
          void this.close(this.#o.gaveUp(failures, error));
          return;
        }
        await this.#sleep(reconnectDelay(failures, policy));
        continue;
      }
      if (stop.aborted) {
        // Closing began as the attempt finished: the teardown may not know of it.
        conn.close(_asError(stop.reason));
        const reason = await conn.closed;
        await this.#o.onDown?.(conn, reason);
        return;
      }
      this.#o.attach?.(conn);
      this.#setState(this.#o.upState);
      if (first) this.#resolveReady();
      this.#o.onUp?.(conn, !first);
      first = false;
      failures = 0;
      const reason = await conn.closed;
      const drained = this.#o.onDown?.(conn, reason);
      if (stop.aborted) return;
      if (policy === false) {
        void this.close(reason);
        return;
      }
      this.#setState("reconnecting", reason);
      await drained;
      await this.#sleep(reconnectDelay(0, policy));
    }
  }

  /** One call of `connect`, under a signal that aborts on close or past the timeout. */
  async #attempt(): Promise<C> {
    const stop = this.#stop.signal;
    const attempt = new AbortController();
    const onStop = () => attempt.abort(stop.reason);
    stop.addEventListener("abort", onStop, { once: true });
    const timeout = this.#o.connectTimeout;
    const timer = setTimeout(() => attempt.abort(this.#o.timedOut(timeout)), timeout);
    try {
      return await this.#o.connect(attempt.signal);
    } finally {
      clearTimeout(timer);
      stop.removeEventListener("abort", onStop);
    }
  }

  #sleep(ms: number): Promise<void> {
    const stop = this.#stop.signal;
    if (stop.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stop.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      stop.addEventListener("abort", done, { once: true });
    });
  }

  #setState(state: ReconnectState<Up>, reason?: Error): void {
    const previous = this.#state;
    if (previous === state || previous === "closed") return;
    this.#state = state;
    if (this.#stateListeners.size === 0) return;
    const change: ReconnectStateChange<Up> = reason
      ? { state, previous, reason }
      : { state, previous };
    for (const listener of this.#stateListeners) {
      try {
        listener(change);
      } catch (err) {
        this.report(_asError(err));
      }
    }
  }
}
