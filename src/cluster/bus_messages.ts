/**
 * What the workers of one process say to each other over the transport of
 * a `BusCluster` (its `MessagePort`s or its `BroadcastChannel`): plain
 * objects, cloned once per receiving worker. Every message names its sender by worker number `w`
 * and incarnation `i` (a random id per start, so that a restarted worker is
 * a new peer).
 *
 * - `hello`: a worker joined (or re-announces itself); it carries its full
 *   presence and every peer answers with a `snap` of its own.
 * - `snap`: a peer's full presence, for the worker `to` that said hello.
 * - `bye`: a worker leaves; its figures are dropped.
 * - `delta`: what changed on a worker in one event-loop turn: room counts
 *   and its connection count as they now are, client IPs it gained or lost,
 *   and the keys that opened (for replacement across workers).
 * - `push`: the {@linkcode Push}es taken in one turn, to deliver to the
 *   receiver's connections in order.
 * - `ask` / `reply`: a figure gathered from every worker.
 *
 * With `--workers N` (a `PortMesh` and a worker count) three more travel to
 * one worker only, never broadcast (see `bus_streams.ts`):
 *
 * - `route`: unstamped pushes to streams the receiver owns, for it to order
 *   (stamp), deliver and post to every worker.
 * - `hist` / `hist-reply`: where streams the receiver owns stand, and what
 *   follows a client's position; the reply travels behind every stamped push
 *   the owner posted before answering.
 *
 * @module
 */
import type { Push } from "../server/push.ts";
import type { StreamAnswer, StreamQuery } from "../server/streams.ts";

/** The whole presence of one worker, as a `hello` or a `snap` carries it. */
export interface PresenceSnapshot {
  /** Authenticated connections. */
  conns: number;
  /** Every room with members and its member count. */
  rooms: [room: string, count: number][];
  /** Every client IP with at least one authenticated connection. */
  ips: string[];
}

/** What changed on one worker in one event-loop turn; every entry is a state, not a step. */
export interface PresenceDelta {
  /** Authenticated connections now. */
  conns: number;
  /** Rooms whose count changed, with their count now (0: no members left). */
  rooms: [room: string, count: number][];
  /** Client IPs whose presence changed: whether the worker now holds a connection from them. */
  ips: [ip: string, present: boolean][];
  /** Keys that opened, with when (milliseconds since the epoch, fractional). */
  keys: [key: string, openedAt: number][];
}

/** Who sent a message. */
interface _From {
  /** The sender's worker number. */
  w: number;
  /** The sender's incarnation. */
  i: string;
  /**
   * The sender's message number, 1 up, counted over everything it posts
   * (each message goes to every peer): Deno's `BroadcastChannel` drops the
   * oldest messages of a receiver that falls more than 256 behind, and a
   * gap is how the receiver learns of it. Over `MessagePort`s it never gaps.
   */
  s: number;
}

/** One message on the bus; see the module documentation. */
export type BusMessage =
  | _From & { t: "hello"; snap: PresenceSnapshot }
  | _From & { t: "snap"; to: string; snap: PresenceSnapshot }
  | _From & { t: "bye" }
  | _From & { t: "delta"; delta: PresenceDelta }
  | _From & { t: "push"; pushes: Push[] }
  | _From & { t: "ask"; id: number; topic: string }
  | _From & { t: "reply"; to: string; id: number; ok: boolean; value: unknown }
  | _From & { t: "route"; pushes: Push[] }
  | _From & { t: "hist"; id: number; queries: StreamQuery[] }
  | _From & { t: "hist-reply"; to: string; id: number; answers?: StreamAnswer[]; error?: string };

/**
 * Whether a message went to one worker only: it does not take a message
 * number (`s` repeats the sender's last), so that the others see no gap.
 *
 * @example
 * ```ts
 * import { isDirected } from "./bus_messages.ts";
 * console.log(isDirected({ t: "route", pushes: [], w: 1, i: "x", s: 4 })); // true
 * ```
 */
export function isDirected(m: BusMessage): boolean {
  return m.t === "route" || m.t === "hist" || m.t === "hist-reply";
}

/** Whether `data` looks like a bus message (a stranger on the channel name is ignored). */
export function isBusMessage(data: unknown): data is BusMessage {
  if (data === null || typeof data !== "object") return false;
  const m = data as Partial<Record<"t" | "w" | "i" | "s", unknown>>;
  return typeof m.t === "string" && typeof m.w === "number" && typeof m.i === "string" &&
    typeof m.s === "number";
}
