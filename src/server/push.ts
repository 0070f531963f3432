/**
 * The narrow contract through which pushes reach a hub: to keys, to every
 * device of users, to one room, or to everyone. A cluster's broker carries
 * these between nodes (its envelope adds who sent it); an in-process bus
 * between hubs carries the same objects. A hub answers them with
 * {@linkcode PushTarget.deliver} and reports what it holds with the online
 * queries.
 *
 * @module
 */

import type { StreamStamp } from "./streams.ts";

/**
 * One push: whom it is for, its op, and the body as the backend sent it.
 *
 * @example
 * ```ts
 * import { Comet } from "./comet.ts";
 * import type { Push } from "./push.ts";
 *
 * await using comet = new Comet();
 * const body = new TextEncoder().encode("hi");
 * const push: Push = { kind: "room", op: 1000, room: "live://1000", body };
 * console.log(comet.deliver(push)); // 0: nobody is in the room
 * ```
 */
export type Push =
  | { kind: "keys"; op: number; keys: readonly string[]; body: Uint8Array }
  | {
    kind: "mids";
    op: number;
    mids: readonly number[];
    body: Uint8Array;
    /** Each mid's stream stamp, by index; set by whoever ordered it, or by the hub that did. */
    stamps?: (StreamStamp | undefined)[];
  }
  | {
    kind: "room";
    op: number;
    room: string;
    body: Uint8Array;
    /** The room stream's stamp; set by whoever ordered it, or by the hub that did. */
    stamp?: StreamStamp;
  }
  | {
    kind: "all";
    op: number;
    /** Connections per second to pace the broadcast at (goim's `speed`); 0 = at once. */
    speed: number;
    body: Uint8Array;
    /** The stamp in the stream of pushes to everyone. */
    stamp?: StreamStamp;
  };

/**
 * Online figures as goim reports them.
 *
 * @example
 * ```ts
 * import { Comet } from "./comet.ts";
 * import type { OnlineTotal } from "./push.ts";
 *
 * await using comet = new Comet();
 * const total: OnlineTotal = comet.onlineTotal();
 * console.log(total.connCount, total.ipCount); // 0 0
 * ```
 */
export interface OnlineTotal {
  /** Distinct client IP addresses among authenticated connections. */
  ipCount: number;
  /** Authenticated connections. */
  connCount: number;
}

/**
 * A room and its member count.
 *
 * @example
 * ```ts
 * import { Comet } from "./comet.ts";
 * import type { RoomCount } from "./push.ts";
 *
 * await using comet = new Comet();
 * const top: RoomCount[] = comet.topRooms("live://", 10);
 * console.log(top); // []: no rooms yet
 * ```
 */
export interface RoomCount {
  /** Room id, e.g. `live://1000`. */
  room: string;
  /** Members online. */
  count: number;
}

/**
 * What takes pushes and answers online queries: a hub, or whatever stands
 * for several of them.
 *
 * @example
 * ```ts
 * import type { Push, PushTarget } from "./push.ts";
 *
 * function relay(target: PushTarget, push: Push): number {
 *   return target.deliver(push);
 * }
 * ```
 */
export interface PushTarget {
  /**
   * Queues the push's frame to the connections it is for that this target
   * holds, and returns how many. A push to a room, mids or all that arrives
   * without its stamps gets them here when this target orders its streams
   * (written into the push, for whoever relays it next).
   *
   * @throws {RangeError} When the op is reserved (0 to 18) or the body too large.
   * @throws {BacklogFullError} When the bytes waiting to be written would pass a cap.
   */
  deliver(push: Push): number;
  /** Members of `room` online. */
  roomOnline(room: string): number;
  /** The `limit` fullest rooms whose id starts with `prefix`, fullest first. */
  topRooms(prefix: string, limit: number): RoomCount[];
  /** Connections and distinct client IPs. */
  onlineTotal(): OnlineTotal;
  /** Every room with members here and its member count. */
  readonly rooms: ReadonlyMap<string, number>;
}
