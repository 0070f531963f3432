/**
 * The goim client's options, states, stats and the shapes its callbacks get.
 *
 * @module
 */
import type { Frame } from "../protocol/frame.ts";
import type { ReconnectOptions } from "../reconnect/backoff.ts";
import type { LinkOpener } from "./link.ts";

/**
 * Where a {@linkcode Client} is in its life: `connecting` until the first
 * connection is authenticated, `open` while it can send and request,
 * `reconnecting` between a dropped connection and the next one being ready,
 * `closed` for good.
 *
 * @example
 * ```ts
 * import type { Client } from "./client.ts";
 * import type { ClientState } from "./client_options.ts";
 *
 * function canSend(client: Client): boolean {
 *   const state: ClientState = client.state;
 *   return state === "open";
 * }
 * ```
 */
export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

/**
 * What {@linkcode Client.onState} listeners get.
 *
 * @example
 * ```ts
 * import type { Client } from "./client.ts";
 * import type { StateChange } from "./client_options.ts";
 *
 * function logStates(client: Client): () => void {
 *   return client.onState(({ state, previous, reason }: StateChange) => {
 *     console.log(`${previous} -> ${state}`, reason?.message ?? "");
 *   });
 * }
 * ```
 */
export interface StateChange {
  /** The new state. */
  state: ClientState;
  /** The state before. */
  previous: ClientState;
  /** Why the connection was lost or the client closed, where there was a reason. */
  reason?: Error;
}

/**
 * goim's auth fields. The client sends them as goim's auth JSON,
 * `{"mid","key","room_id","platform","accepts"}`.
 *
 * @example
 * ```ts
 * import type { GoimAuth } from "./client_options.ts";
 *
 * const auth: GoimAuth = { mid: 42, roomId: "live://1000", platform: "web", accepts: [1000] };
 * ```
 */
export interface GoimAuth {
  /** User id. Default 0. */
  mid?: number;
  /** Connection key; empty lets the server generate one. Default empty. */
  key?: string;
  /** Room to join, e.g. `live://1000` (`room_id`). Default none. */
  roomId?: string;
  /** Client platform, e.g. `web`. Default empty. */
  platform?: string;
  /** Business ops to watch from the start. Default none. */
  accepts?: number[];
}

/**
 * Options for {@linkcode Client} and {@linkcode connect}. Durations are in milliseconds.
 *
 * @example
 * ```ts
 * import type { ClientOptions } from "./client_options.ts";
 *
 * const options: ClientOptions = {
 *   mid: 42,
 *   roomId: "live://1000",
 *   accepts: [1000],
 *   reconnect: { initialDelay: 1_000, maxAttempts: 10 },
 * };
 * ```
 */
export interface ClientOptions extends GoimAuth {
  /**
   * The auth (op 7) body as it is, instead of the goim fields: bytes, text
   * (sent as UTF-8) or an object (sent as JSON). Sent again on every reconnect.
   */
  auth?: Uint8Array | string | object;
  /**
   * Interval between heartbeats (op 2). A heartbeat not answered by the next
   * one counts the connection as dead. Keep it well under the server's
   * heartbeat timeout (goim: 4 min; Comet: 8 min by default). Default 30 000.
   */
  heartbeat?: number;
  /** How to reconnect after a drop; `false` closes the client instead. */
  reconnect?: false | ReconnectOptions;
  /** Default timeout of {@linkcode Client.request} and the other calls that await a reply. Default 10 000. */
  requestTimeout?: number;
  /** How long one connection attempt may take to open and authenticate. Default 10 000. */
  connectTimeout?: number;
  /**
   * While the client is connecting or reconnecting, hold requests (and
   * sub, unsub, changeRoom) until it is open instead of failing them at once
   * with {@linkcode ConnectionClosedError}. Their timeout still runs. Default `false`.
   */
  queueWhileReconnecting?: boolean;
  /** Pushes buffered per {@linkcode Client.messages} stream before the oldest is dropped. Default 1024. */
  messageBuffer?: number;
  /** Largest frame body accepted over TCP, in bytes. Default 16 MiB. */
  maxBody?: number;
  /** Extra PEM root certificates to trust for `tls://` (and `wss://` on Deno). */
  caCerts?: string[];
  /**
   * Opens connections. Default: {@linkcode openWsLink}, WebSocket only, which
   * works in browsers; {@linkcode connect} (Deno) passes
   * {@linkcode openLink}, which adds `tcp://` and `tls://`.
   */
  link?: LinkOpener;
  /** Aborting closes the client as {@linkcode Client.close} does. */
  signal?: AbortSignal;
  /**
   * Recover the room, user and broadcast streams across reconnects
   * (docs/protocol.md, section 8): the auth JSON gets a `recover` field
   * naming the positions held, the server replays what was missed, and
   * pushes to those streams carry their position ({@linkcode ClientFrame.stream}).
   * What could not be recovered is reported to {@linkcode Client.onStreamLost}.
   * With `auth` as raw bytes or text, `recover` is added only when the body
   * is a JSON object (and has no `recover` of its own). With the goim fields,
   * `room_id` names the room the client is in, which may be a later
   * {@linkcode Client.changeRoom}'s. `false` sends goim's auth JSON
   * byte for byte as before. Default `true`.
   */
  recover?: boolean;
  /**
   * Positions to recover from on the first connection, e.g. the
   * {@linkcode Client.positions} an earlier page load saved. Default none:
   * the first connection recovers nothing.
   */
  positions?: StreamPositions;
}

/**
 * The streams a connection reads (docs/protocol.md, section 8.1): its room,
 * its user (`mid`, every device) and everyone (`all`). Pushes to keys belong
 * to no stream.
 *
 * @example
 * ```ts
 * import type { StreamName } from "./client_options.ts";
 *
 * const names: StreamName[] = ["room", "mid", "all"];
 * ```
 */
export type StreamName = "room" | "mid" | "all";

/**
 * A place in a stream: its epoch (which changes when the server lost the
 * stream's history) and the offset of the last push held (0: none of this
 * epoch yet).
 *
 * @example
 * ```ts
 * import type { StreamPosition } from "./client_options.ts";
 *
 * const held: StreamPosition = { epoch: 305419896, offset: 45 };
 * ```
 */
export interface StreamPosition {
  /** The stream's epoch, 0 to 2^32 − 1 (0: never learned). */
  epoch: number;
  /** The offset of the last push held, 0 to 2^53 − 1. */
  offset: number;
}

/**
 * A position in a room's stream, with the room's id.
 *
 * @example
 * ```ts
 * import type { RoomPosition } from "./client_options.ts";
 *
 * const held: RoomPosition = { id: "live://1", epoch: 7, offset: 3 };
 * ```
 */
export interface RoomPosition extends StreamPosition {
  /** The room, e.g. `live://1`. */
  id: string;
}

/**
 * The positions a client holds, per stream: what it names in `recover` when
 * it reconnects. See {@linkcode Client.positions} and the `positions` option.
 *
 * @example
 * ```ts
 * import type { StreamPositions } from "./client_options.ts";
 *
 * const saved: StreamPositions = JSON.parse('{"mid":{"epoch":9,"offset":12}}');
 * console.log(saved.mid?.offset); // 12
 * ```
 */
export interface StreamPositions {
  /** The room the client is in, when it holds a position there. */
  room?: RoomPosition;
  /** The user's stream. */
  mid?: StreamPosition;
  /** The broadcast stream. */
  all?: StreamPosition;
}

/**
 * Where a push delivered from a stream (op 18) sits: see {@linkcode ClientFrame.stream}.
 *
 * @example
 * ```ts
 * import type { StreamInfo } from "./client_options.ts";
 *
 * const info: StreamInfo = { kind: "room", epoch: 7, offset: 4 };
 * ```
 */
export interface StreamInfo extends StreamPosition {
  /** Which stream the push belongs to. */
  kind: StreamName;
}

/**
 * A frame as the client delivers it. A push to one of the client's streams
 * (op 18 on the wire) arrives like a plain push, with its business `op` and
 * its pushed bytes as `body`, plus `stream`; other frames have no `stream`.
 *
 * @example
 * ```ts
 * import type { Client } from "./client.ts";
 * import type { ClientFrame } from "./client_options.ts";
 *
 * function listen(client: Client): void {
 *   client.on(1000, (frame: ClientFrame) => {
 *     if (frame.stream) console.log(frame.stream.kind, frame.stream.offset);
 *   });
 * }
 * ```
 */
export interface ClientFrame extends Frame {
  /** The stream and position of a push that came from one; absent otherwise. */
  stream?: StreamInfo;
}

/**
 * Why a stream could not be followed without a hole: `epoch`, the server
 * lost the stream's history (or the client never saw this stream);
 * `window`, some push missed is no longer kept (also any reason this client
 * does not know); `room`, the connection was put in another room than the
 * one held; `gap`, a live push skipped offsets.
 *
 * @example
 * ```ts
 * import type { StreamLostReason } from "./client_options.ts";
 *
 * const reason: StreamLostReason = "window";
 * ```
 */
export type StreamLostReason = "epoch" | "window" | "room" | "gap";

/**
 * What {@linkcode Client.onStreamLost} listeners get: pushes of `stream` were
 * missed and will not come. The client already holds the stream's new
 * position and goes on from there.
 *
 * @example
 * ```ts
 * import type { Client } from "./client.ts";
 * import type { StreamLost } from "./client_options.ts";
 *
 * function reloadOnLoss(client: Client): () => void {
 *   return client.onStreamLost(({ stream, id, reason }: StreamLost) => {
 *     console.log(`missed pushes of ${stream} ${id ?? ""}: ${reason}`);
 *   });
 * }
 * ```
 */
export interface StreamLost {
  /** The stream that lost pushes. */
  stream: StreamName;
  /** The room's id, for `room`. */
  id?: string;
  /** Why; see {@linkcode StreamLostReason}. */
  reason: StreamLostReason;
}

/**
 * Options for one {@linkcode Client.request}.
 *
 * @example
 * ```ts
 * import type { Client } from "./client.ts";
 * import type { RequestOptions } from "./client_options.ts";
 *
 * function ask(client: Client, signal: AbortSignal): Promise<Uint8Array> {
 *   const options: RequestOptions = { timeout: 2_000, signal };
 *   return client.request("ping", options);
 * }
 * ```
 */
export interface RequestOptions {
  /** Milliseconds to wait for the reply. Default: the client's `requestTimeout`. */
  timeout?: number;
  /** Aborting rejects the request with the signal's reason; a late reply is ignored. */
  signal?: AbortSignal;
}

/**
 * Options for {@linkcode Client.messages} and {@linkcode Client.jsonMessages}.
 *
 * @example
 * ```ts
 * import type { Client } from "./client.ts";
 * import type { MessagesOptions } from "./client_options.ts";
 *
 * function latest(client: Client) {
 *   const options: MessagesOptions = { buffer: 16 };
 *   return client.messages(options);
 * }
 * ```
 */
export interface MessagesOptions {
  /** Pushes buffered before the oldest is dropped. Default: the client's `messageBuffer`. */
  buffer?: number;
}

/**
 * Receives one frame; see {@linkcode Client.on}.
 *
 * @example
 * ```ts
 * import type { FrameHandler } from "./client_options.ts";
 *
 * const show: FrameHandler = (frame) => console.log(frame.op, frame.body.length);
 * ```
 */
export type FrameHandler = (frame: ClientFrame) => void;

/**
 * A push whose body was parsed as JSON; see {@linkcode Client.jsonMessages}.
 *
 * @example
 * ```ts
 * import type { Client } from "./client.ts";
 * import type { JsonMessage } from "./client_options.ts";
 *
 * async function firstChat(client: Client): Promise<JsonMessage<{ text: string }> | undefined> {
 *   for await (const message of client.jsonMessages<{ text: string }>()) {
 *     if (message.op === 1000) return message;
 *   }
 * }
 * ```
 */
export interface JsonMessage<T = unknown> {
  /** The push's operation. */
  op: number;
  /** The parsed body, e.g. `{ act, data }`. */
  value: T;
  /** The stream and position of a push that came from one; see {@linkcode ClientFrame.stream}. */
  stream?: StreamInfo;
}

/**
 * Counters since the client was created.
 *
 * @example
 * ```ts
 * import type { Client } from "./client.ts";
 * import type { ClientStats } from "./client_options.ts";
 *
 * function reconnects(client: Client): number {
 *   const stats: Readonly<ClientStats> = client.stats;
 *   return stats.reconnects;
 * }
 * ```
 */
export interface ClientStats {
  /** Connections that opened (authenticated and restored). */
  opens: number;
  /** Of those, the ones after a drop. */
  reconnects: number;
  /** Heartbeats that went unanswered and cost the connection. */
  missedHeartbeats: number;
  /** Pushes dropped by lagging {@linkcode Client.messages} streams. */
  dropped: number;
  /** op-9 batches unpacked. */
  batches: number;
  /** Replies that matched no request in flight (late after a timeout or abort). */
  lateReplies: number;
}
