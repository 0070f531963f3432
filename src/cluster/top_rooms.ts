import type { RoomCount } from "../server/push.ts";

/**
 * The `limit` fullest rooms whose id starts with `prefix`, counting this
 * hub's members and the others' (other workers, other nodes) together;
 * fullest first, then by id, so that every node lists a tie alike.
 *
 * @example
 * ```ts
 * import { mergeTopRooms } from "./top_rooms.ts";
 *
 * const here = new Map([["live://1", 2]]);
 * const others = new Map([["live://1", 1], ["live://2", 5]]);
 * console.log(mergeTopRooms(here, others, "live://", 1)); // [{ room: "live://2", count: 5 }]
 * ```
 */
export function mergeTopRooms(
  here: ReadonlyMap<string, number>,
  others: Iterable<readonly [string, number]>,
  prefix: string,
  limit: number,
): RoomCount[] {
  const merged = new Map<string, number>();
  for (const [room, n] of others) if (room.startsWith(prefix)) merged.set(room, n);
  for (const [room, n] of here) {
    if (room.startsWith(prefix)) merged.set(room, (merged.get(room) ?? 0) + n);
  }
  const out: RoomCount[] = [];
  for (const [room, count] of merged) out.push({ room, count });
  out.sort((a, b) => b.count - a.count || (a.room < b.room ? -1 : 1));
  return out.slice(0, Math.max(0, limit));
}
