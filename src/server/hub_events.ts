import type { LogFields, Logger } from "../log.ts";
import type { Channel } from "./channel.ts";
import type { Connection } from "./connection.ts";
import type { CometObserver } from "./comet_observer.ts";

/** The observer calls that tell of something that happened. */
type _Event = "opened" | "heartbeat" | "closed" | "roomOpened" | "roomClosed";

/**
 * What the hub tells the outside about its sessions: the observer's calls
 * (whose failures are logged, never the client's) and the trace lines of
 * traced connections. Every part of the hub that has news goes through it.
 *
 * @example
 * ```ts
 * import { HubEvents } from "./hub_events.ts";
 * import { silentLogger } from "../log.ts";
 *
 * const events = new HubEvents(silentLogger, { roomOpened: (room) => console.log(room) });
 * events.notify("roomOpened", "live://1"); // live://1
 * ```
 */
export class HubEvents {
  /** Who hears of sessions and rooms; see `Comet.observer`. */
  observer: CometObserver | undefined;
  /** Where the hub logs. */
  readonly logger: Logger;

  /** Starts with `observer`, logging to `logger`. */
  constructor(logger: Logger, observer?: CometObserver) {
    this.logger = logger;
    this.observer = observer;
  }

  /** One step of a traced connection, at info level. */
  trace(ch: Channel, step: string, fields?: LogFields): void {
    this.logger.info(`Trace: ${step}`, { mid: ch.mid, key: ch.key, ...fields });
  }

  /** Tells the observer, if it listens for `event`; what it throws is logged. */
  notify<E extends _Event>(event: E, arg: Parameters<NonNullable<CometObserver[E]>>[0]): void {
    const observer = this.observer;
    try {
      (observer?.[event] as ((arg: Connection | string) => void) | undefined)?.call(observer, arg);
    } catch (err) {
      this.logger.warn("Observer failed", { event, error: err });
    }
  }

  /** Runs an observer call the client waits for; a failure is logged, not the client's. */
  async wait(event: "opening" | "joining", call: () => void | Promise<void>): Promise<void> {
    try {
      await call();
    } catch (err) {
      this.logger.warn("Observer failed", { event, error: err });
    }
  }
}
