/**
 * What the goim client watches and where it sits, so that every new
 * connection is brought back to it.
 *
 * @module
 */
import { Op } from "../protocol/op.ts";
import { _encoder, _opList } from "./_util.ts";

/**
 * The business ops subscribed to (op 14) and unsubscribed from (op 16) and
 * the room moved to (op 12), as the server confirmed them; replayed after
 * every reconnect's auth.
 *
 * @example
 * ```ts
 * import { WatchState } from "./watch_state.ts";
 *
 * const watch = new WatchState();
 * watch.subscribed([1000, 1001]);
 * watch.unsubscribed([1001]);
 * watch.moved("live://1");
 * console.log(watch.restores().map(([op]) => op)); // [14, 16, 12]
 * ```
 */
export class WatchState {
  #subs = new Set<number>();
  #unsubs = new Set<number>();
  #room: string | undefined;

  /** The server confirmed watching `ops`. */
  subscribed(ops: readonly number[]): void {
    for (const op of ops) {
      this.#subs.add(op);
      this.#unsubs.delete(op);
    }
  }

  /** The server confirmed no longer watching `ops`. */
  unsubscribed(ops: readonly number[]): void {
    for (const op of ops) {
      this.#subs.delete(op);
      this.#unsubs.add(op);
    }
  }

  /** The server confirmed the move to `room` (empty: no room). */
  moved(room: string): void {
    this.#room = room;
  }

  /** The room last moved to ("" none); undefined when never moved. */
  get room(): string | undefined {
    return this.#room;
  }

  /**
   * The requests (op and body) that bring a new connection here, in the
   * order to send them. `inRoom` is the room the server said the connection
   * is in already, if it said: moving there again would only lose the
   * position the auth recovered.
   */
  restores(inRoom?: string): [op: number, body: Uint8Array][] {
    const requests: [number, Uint8Array][] = [];
    if (this.#subs.size > 0) requests.push([Op.Sub, _opList([...this.#subs])]);
    if (this.#unsubs.size > 0) requests.push([Op.Unsub, _opList([...this.#unsubs])]);
    if (this.#room !== undefined && this.#room !== inRoom) {
      requests.push([Op.ChangeRoom, _encoder.encode(this.#room)]);
    }
    return requests;
  }
}
