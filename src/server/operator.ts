import type { Frame } from "../protocol/frame.ts";
import type { Connection } from "./connection.ts";
import type { ConnInfo } from "./wire.ts";

/**
 * What a connection presented to authenticate.
 *
 * @example
 * ```ts
 * import { type ConnectRequest, parseGoimAuth } from "./operator.ts";
 *
 * const request: ConnectRequest = {
 *   body: new TextEncoder().encode('{"mid":7,"room_id":"live://1"}'),
 *   info: { transport: "tcp", remoteAddr: { hostname: "203.0.113.7", port: 51234 } },
 * };
 * console.log(parseGoimAuth(request.body).mid); // 7
 * ```
 */
export interface ConnectRequest {
  /** The body of the client's op-7 Auth frame. */
  body: Uint8Array;
  /** Transport facts: kind, remote address, upgrade headers. */
  info: ConnInfo;
}

/**
 * Who an authenticated connection is; returned by {@linkcode Operator.connect}.
 *
 * @example
 * ```ts
 * import type { Session } from "./operator.ts";
 *
 * const session: Session = {
 *   mid: 42,
 *   room: "live://1000",
 *   accepts: [1000, 1001],
 *   rooms: ["live://1000", "live://1001"],
 * };
 * ```
 */
export interface Session {
  /** User id; several connections (devices) may share one. 0 means anonymous. */
  mid?: number;
  /** Connection key; must be unique. Empty or absent: one is generated. */
  key?: string;
  /** Room to join, e.g. `live://1000`. Empty or absent: none. */
  room?: string;
  /** Business ops the connection watches from the start. */
  accepts?: number[];
  /** Client platform as the client reported it, e.g. `web`, `android`. */
  platform?: string;
  /** This connection's heartbeat deadline in milliseconds, overriding the server's. */
  heartbeat?: number;
  /**
   * When the connection's credentials run out, in milliseconds since the
   * epoch (`Date.now()` clock): the hub then closes it with op 6
   * `token expired`. Absent: never.
   */
  expiresAt?: number;
  /**
   * The rooms this connection may move to with op 12. Absent: any room, as
   * goim allows. Present: a change to any other room is refused with op 6
   * `room refused: <room>` and the connection closed (leaving, an empty
   * room id, is always allowed). `room`, when set, must be among them.
   */
  rooms?: string[];
}

/**
 * A reply body from {@linkcode Operator.receive}: bytes, or text sent as UTF-8.
 *
 * @example
 * ```ts
 * import type { ReplyBody } from "./operator.ts";
 *
 * const reply: ReplyBody = JSON.stringify({ ok: true }); // sent as UTF-8
 * ```
 */
export type ReplyBody = Uint8Array | string;

/**
 * Where an application plugs its logic into Comet: who may connect, what
 * happens to upstream messages, and what to do on heartbeats and disconnects.
 *
 * @example
 * ```ts
 * import type { Operator } from "./operator.ts";
 *
 * const operator: Operator = {
 *   connect({ body }) {
 *     const { token } = JSON.parse(new TextDecoder().decode(body));
 *     if (token !== "secret") throw new Error("Bad token");
 *     return { mid: 1, room: "live://1" };
 *   },
 *   receive(_connection, frame) {
 *     return new TextDecoder().decode(frame.body).toUpperCase();
 *   },
 * };
 * ```
 */
export interface Operator {
  /**
   * Authenticates a connection from its auth body. Throwing refuses it: the
   * client gets op 6 with the error message and is disconnected.
   */
  connect(request: ConnectRequest): Session | Promise<Session>;
  /** Called once after an authenticated connection has ended. */
  disconnect?(connection: Connection): void | Promise<void>;
  /**
   * Handles an upstream op-4 message. What it returns is sent back as op 5
   * with the request's seq; `undefined` sends no reply. When absent, Comet
   * echoes the body.
   */
  receive?(
    connection: Connection,
    frame: Frame,
  ): ReplyBody | undefined | Promise<ReplyBody | undefined>;
  /** Called on every client heartbeat, after the deadline was renewed. */
  heartbeat?(connection: Connection): void | Promise<void>;
}

const _decoder = new TextDecoder("utf-8", { fatal: true });

/** A string field of the auth JSON; undefined when absent or null. */
function _string(o: Record<string, unknown>, field: string): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new TypeError(`Auth field ${field} is not a string`);
  return v;
}

/**
 * Parses goim's auth JSON
 * (`{"mid":int64,"key":string,"room_id":string,"platform":string,"accepts":[int32]}`)
 * into a {@linkcode Session}. Missing fields take goim's defaults.
 *
 * @throws {TypeError} When the body is not that JSON object.
 *
 * @example
 * ```ts
 * import { parseGoimAuth } from "./operator.ts";
 * const body = new TextEncoder().encode('{"mid":7,"room_id":"live://1","accepts":[1000]}');
 * console.log(parseGoimAuth(body).mid); // 7
 * ```
 */
export function parseGoimAuth(body: Uint8Array): Session {
  let value: unknown;
  try {
    value = JSON.parse(_decoder.decode(body));
  } catch {
    throw new TypeError("Auth body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError("Auth body is not a JSON object");
  }
  const o = value as Record<string, unknown>;
  const session: Session = {};
  const { mid, accepts } = o;
  if (mid !== undefined && mid !== null) {
    if (typeof mid !== "number") throw new TypeError(`Auth field mid is not a number: ${mid}`);
    session.mid = mid;
  }
  const key = _string(o, "key");
  if (key !== undefined) session.key = key;
  const room = _string(o, "room_id");
  if (room !== undefined) session.room = room;
  const platform = _string(o, "platform");
  if (platform !== undefined) session.platform = platform;
  if (accepts !== undefined && accepts !== null) {
    if (!Array.isArray(accepts)) throw new TypeError("Auth field accepts is not an array");
    session.accepts = accepts;
  }
  return session;
}

/**
 * goim's behaviour: accepts the auth JSON as it comes (a key is generated when
 * empty) and echoes upstream messages. Trusts the client, so it suits
 * loopback, development and deployments that authenticate in front of Comet.
 *
 * @example
 * ```ts
 * import { DefaultOperator } from "./operator.ts";
 * const operator = new DefaultOperator();
 * ```
 */
export class DefaultOperator implements Operator {
  /** Parses goim's auth JSON; see {@linkcode parseGoimAuth}. */
  connect(request: ConnectRequest): Session {
    return parseGoimAuth(request.body);
  }

  /** Echoes the upstream body. */
  receive(_connection: Connection, frame: Frame): Uint8Array {
    return frame.body;
  }
}
