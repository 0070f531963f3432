import type { Logger } from "../log.ts";
import type { Channel } from "./channel.ts";
import type { CometStats } from "./hub_stats.ts";
import { TimerHeap } from "./timer_heap.ts";

/**
 * Every connection's one deadline, in one timer heap: its handshake while
 * it authenticates, then the earlier of its next heartbeat and its
 * credentials' expiry, then its close grace. When one passes, the
 * connection is told why (an expired token) or cut off, and it is counted.
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 * import { newStats } from "./hub_stats.ts";
 * import { silentLogger } from "../log.ts";
 *
 * const deadlines = new Deadlines(newStats(), silentLogger);
 * console.log(deadlines.size); // 0
 * deadlines.close();
 * ```
 */
export class Deadlines {
  #timers: TimerHeap<Channel>;
  #stats: CometStats;
  #logger: Logger;

  /** Counts what expires in `stats`. */
  constructor(stats: CometStats, logger: Logger) {
    this.#stats = stats;
    this.#logger = logger;
    this.#timers = new TimerHeap({
      onExpire: (ch) => this.#expire(ch),
      onError: (error, ch) => logger.error("Deadline handler failed", { key: ch.key, error }),
    });
  }

  /** Scheduled deadlines (one per live connection). */
  get size(): number {
    return this.#timers.size;
  }

  /** The deadlines' clock, in milliseconds. */
  now(): number {
    return this.#timers.now();
  }

  /** Gives a new connection `ms` to authenticate. */
  handshake(ch: Channel, ms: number): void {
    ch._timer = this.#timers.add(ch, ms);
  }

  /** The earlier of the next heartbeat deadline and the credentials' expiry. */
  rearm(ch: Channel): void {
    this.#timers.resetAt(ch._timer!, Math.min(this.#timers.now() + ch._heartbeat, ch._expiresAt));
  }

  /** A graceful close began: the connection is cut off after `ms`. */
  grace(ch: Channel, ms: number): void {
    if (ch._timer) this.#timers.reset(ch._timer, ms);
  }

  /** The connection has ended. */
  remove(ch: Channel): void {
    this.#timers.remove(ch._timer!);
  }

  /** Stops the heap's timer. */
  close(): void {
    this.#timers.close();
  }

  #expire(ch: Channel): void {
    if (ch.state === "handshake") {
      this.#stats.handshakeTimeouts++;
      this.#logger.debug("Handshake timed out", { remote: ch.info.remoteAddr.hostname });
      ch._closeReason = "handshake timeout";
    } else if (ch.state === "open" && this.#timers.now() >= ch._expiresAt) {
      // A graceful close: the client learns why, and the close grace re-arms the timer.
      this.#stats.tokenExpired++;
      this.#logger.debug("Credentials expired", { key: ch.key });
      ch.close("token expired");
      return;
    } else if (ch.state === "open") {
      this.#stats.heartbeatTimeouts++;
      this.#logger.debug("Heartbeat timed out", { key: ch.key });
      ch._closeReason = "heartbeat timeout";
    } else if (ch._traced && ch._closeReason !== "") {
      ch._closeReason += ", cut off after the close grace";
    }
    ch.abort();
  }
}
