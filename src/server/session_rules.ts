import { isInt32, positive } from "./_util.ts";
import { MAX_ID_LENGTH, MAX_WATCH } from "./defaults.ts";
import type { Session } from "./operator.ts";

/** A session with every default filled in. */
export type NormalizedSession = Required<Omit<Session, "heartbeat" | "expiresAt" | "rooms">> & {
  /** Heartbeat deadline in milliseconds. */
  heartbeat: number;
  /** When the credentials expire, epoch milliseconds; Infinity: never. */
  expiresAt: number;
  /** Rooms op 12 may move to; undefined: any. */
  rooms: string[] | undefined;
};

/**
 * Checks what an operator's `connect` returned and fills in the defaults: a
 * random key, no room, no watched ops, `heartbeat` as the hub's heartbeat
 * deadline.
 *
 * @throws {TypeError} When the session is malformed or has already expired.
 * @throws {RangeError} When its heartbeat is not a positive number.
 *
 * @example
 * ```ts
 * import { normalizeSession } from "./session_rules.ts";
 * const session = normalizeSession({ mid: 7, room: "live://1" }, 60_000);
 * console.log(session.heartbeat, session.accepts); // 60000 []
 * ```
 */
export function normalizeSession(s: Session, heartbeat: number): NormalizedSession {
  if (typeof s !== "object" || s === null) throw new TypeError("Operator returned no session");
  const mid = s.mid ?? 0;
  if (!Number.isSafeInteger(mid) || mid < 0) {
    throw new TypeError(`Session mid must be a non-negative safe integer: ${mid}`);
  }
  const key = s.key || crypto.randomUUID();
  const room = s.room ?? "";
  if (typeof key !== "string" || key.length > MAX_ID_LENGTH) {
    throw new TypeError(`Session key must be a string of at most ${MAX_ID_LENGTH} characters`);
  }
  if (typeof room !== "string" || room.length > MAX_ID_LENGTH) {
    throw new TypeError(`Session room must be a string of at most ${MAX_ID_LENGTH} characters`);
  }
  const accepts = s.accepts ?? [];
  if (!Array.isArray(accepts) || accepts.length > MAX_WATCH || !accepts.every(isInt32)) {
    throw new TypeError("Session accepts must be an array of 32-bit integers");
  }
  const beat = positive("Session heartbeat", s.heartbeat, heartbeat);
  const expiresAt = s.expiresAt ?? Infinity;
  if (typeof expiresAt !== "number" || Number.isNaN(expiresAt)) {
    throw new TypeError(`Session expiresAt must be epoch milliseconds: ${expiresAt}`);
  }
  if (expiresAt <= Date.now()) throw new TypeError("Session has already expired");
  const rooms = s.rooms;
  if (rooms !== undefined) {
    if (
      !Array.isArray(rooms) || rooms.length > MAX_WATCH ||
      !rooms.every((r) => typeof r === "string" && r.length <= MAX_ID_LENGTH)
    ) {
      throw new TypeError(`Session rooms must be at most ${MAX_WATCH} room ids`);
    }
    if (room !== "" && !rooms.includes(room)) {
      throw new TypeError(`Session room is not among its allowed rooms: ${room}`);
    }
  }
  const platform = String(s.platform ?? "");
  return { mid, key, room, accepts, platform, heartbeat: beat, expiresAt, rooms };
}
