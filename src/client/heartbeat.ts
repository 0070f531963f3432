/**
 * The goim client's heartbeat: op 2 every interval on the open link; a
 * heartbeat not answered by the next one costs the link.
 *
 * @module
 */
import { _int32 } from "../protocol/_int.ts";
import { encodeFrame } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import { _sendQuietly } from "./_util.ts";
import { ConnectionClosedError } from "./connection_closed_error.ts";
import type { Link } from "./link.ts";

// Every heartbeat is the same 16 bytes; the server echoes seq 0, which no request uses.
const _HEARTBEAT = encodeFrame(Op.Heartbeat, 0);

/**
 * Sends heartbeats on one link at a time and reads the online count from
 * the replies. A reply must come before the next heartbeat is due, else the
 * link is closed with {@linkcode ConnectionClosedError}.
 *
 * @example
 * ```ts ignore
 * import { Heartbeat } from "./heartbeat.ts";
 *
 * const heartbeat = new Heartbeat(30_000, () => console.log("missed"));
 * heartbeat.start(link);
 * // ...on every op-3 frame:
 * heartbeat.replied(frame.body);
 * console.log(heartbeat.online);
 * ```
 */
export class Heartbeat {
  #interval: number;
  #onMissed: () => void;
  #link: Link | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #due = false;
  #online = 0;

  /** `onMissed` is called when a reply did not come in time, before the link is closed. */
  constructor(interval: number, onMissed: () => void) {
    this.#interval = interval;
    this.#onMissed = onMissed;
  }

  /** Members online in the room, from the last reply; 0 before one. */
  get online(): number {
    return this.#online;
  }

  /** Starts beating on `link`, at once and then every interval. */
  start(link: Link): void {
    this.stop();
    this.#link = link;
    this.#due = false;
    this.#timer = setInterval(this.#beat, this.#interval);
    this.#beat();
  }

  /** Stops beating; idempotent. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#link = undefined;
  }

  /** A heartbeat reply (op 3) came, with the room's online count when it has one. */
  replied(body: Uint8Array): void {
    this.#due = false;
    if (body.length >= 4) this.#online = _int32(body, 0);
  }

  #beat = (): void => {
    const link = this.#link;
    if (link === undefined) return;
    if (this.#due) {
      this.#onMissed();
      link.close(
        new ConnectionClosedError(`Heartbeat reply missed: none within ${this.#interval} ms`),
      );
      return;
    }
    this.#due = true;
    _sendQuietly(link, _HEARTBEAT);
  };
}
