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
export type FrameHandler = (frame: Frame) => void;

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
