/**
 * Which worker orders a stream, and the stamps a push carries across the
 * worker bus (`bus_streams.ts` routes pushes by them).
 *
 * @module
 */
import type { Push } from "../server/push.ts";

/**
 * The worker (0 to `workers` − 1) that orders `stream`: FNV-1a over the
 * name's UTF-16 code units, modulo `workers`. The same in every isolate
 * and every start, so a restarted worker owns what it owned.
 *
 * @throws {RangeError} When `workers` is not a positive integer.
 *
 * @example
 * ```ts
 * import { streamOwner } from "./stream_owner.ts";
 * const w = streamOwner("room:live://1", 4);
 * console.log(w >= 0 && w < 4); // true
 * ```
 */
export function streamOwner(stream: string, workers: number): number {
  if (!Number.isSafeInteger(workers) || workers < 1) {
    throw new RangeError(`Workers must be a positive integer: ${workers}`);
  }
  let h = 0x811c9dc5;
  for (let i = 0; i < stream.length; i++) {
    h ^= stream.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % workers;
}

/**
 * Whether a push carries its stream stamps (a keys push never does).
 *
 * @example
 * ```ts
 * import { isStamped } from "./stream_owner.ts";
 * const body = new Uint8Array();
 * console.log(isStamped({ kind: "room", op: 1000, room: "r", body })); // false
 * ```
 */
export function isStamped(push: Push): boolean {
  if (push.kind === "mids") return push.stamps !== undefined;
  return push.kind !== "keys" && push.stamp !== undefined;
}

/**
 * The push without its stamps: the same object when it has none, else a
 * copy (the original may still be in a hub's writers).
 *
 * @example
 * ```ts
 * import { unstamped } from "./stream_owner.ts";
 * const push = { kind: "all" as const, op: 1000, speed: 0, body: new Uint8Array(), stamp: { epoch: 1, offset: 1 } };
 * console.log(unstamped(push).kind, "stamp" in unstamped(push)); // all false
 * ```
 */
export function unstamped(push: Push): Push {
  if (!isStamped(push)) return push;
  switch (push.kind) {
    case "mids":
      return { kind: "mids", op: push.op, mids: push.mids, body: push.body };
    case "room":
      return { kind: "room", op: push.op, room: push.room, body: push.body };
    case "all":
      return { kind: "all", op: push.op, speed: push.speed, body: push.body };
    default:
      return push;
  }
}
