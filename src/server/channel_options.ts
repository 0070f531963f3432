/**
 * What a hub hands each of its channels: the settings they share and the
 * hooks they report to.
 *
 * @module
 */
import type { Frame } from "../protocol/frame.ts";
import type { Backlog } from "./backlog.ts";
// deno-lint-ignore no-unused-vars
import type { FrameReader } from "./wire.ts";
import type { WriteScheduler } from "./write_scheduler.ts";

/**
 * What happens to a slow connection (see {@linkcode ChannelOptions.writeTimeout}):
 * `close` tells the client with op 6 and disconnects it; `drop` (goim's
 * behaviour) drops the messages past its queue and counts them.
 *
 * @example
 * ```ts
 * import type { SlowPolicy } from "./channel_options.ts";
 * import { Comet } from "./comet.ts";
 *
 * const slow: SlowPolicy = "drop";
 * await using comet = new Comet({ slow, queueSize: 256 });
 * ```
 */
export type SlowPolicy = "close" | "drop";

/**
 * Lifecycle of a channel.
 *
 * @example
 * ```ts
 * import type { ChannelState } from "./channel_options.ts";
 * import type { Connection } from "./connection.ts";
 *
 * function isOpen(connection: Connection): boolean {
 *   const state: ChannelState = connection.state;
 *   return state === "open";
 * }
 * ```
 */
export type ChannelState = "handshake" | "open" | "closing" | "closed";

/**
 * Hooks a channel (`C`, the hub's `Channel`) reports to; implemented by the
 * hub. Generic so that this file need not import the channel's.
 */
export interface ChannelHooks<C> {
  /** `count` messages were dropped because the connection is slow (`drop` policy). */
  dropped(channel: C, count: number): void;
  /** The connection is slow under the `close` policy; the channel is closing. */
  slow(channel: C): void;
  /** The channel began a graceful close; `grace` bounds the final flush. */
  closing(channel: C, grace: number): void;
  /** A push was queued to a channel whose `_traced` is set; never called for others. */
  pushed?(channel: C, frame: Uint8Array): void;
  /**
   * A frame from a wire the channel listens to (see
   * {@linkcode FrameReader._frame}). The hub implements it; a channel whose
   * hooks lack it is never handed to `Wire._listen`.
   */
  frame?(channel: C, frame: Frame): boolean | Promise<boolean>;
  /** The listening wire's stream ended (see {@linkcode FrameReader._ended}). */
  ended?(channel: C, err?: unknown): void;
}

/**
 * What every channel of one hub shares. The hub makes one such object and
 * hands it to all its channels, so the settings cost a channel one field.
 */
export interface ChannelOptions<C> {
  /**
   * Frames pushed to one connection alone (its key, its user) queued at
   * most; past it the slow policy applies. Also what a slow connection keeps
   * under `drop`. A positive integer.
   */
  readonly queueSize: number;
  /**
   * How long, in ms, a connection's socket may refuse what is written to it
   * (one write pending, or consecutive writes the kernel took only part of)
   * while a full queue's worth waits for it, before it counts as slow.
   * Default 2 s.
   */
  readonly writeTimeout?: number;
  /** Where queued bytes are counted; the hub shares one among its channels and rooms. */
  readonly backlog?: Backlog | undefined;
  /** The slow-consumer policy. */
  readonly slow: SlowPolicy;
  /** Where drops and slow closes are reported. */
  readonly hooks: ChannelHooks<C>;
  /** How long a graceful close may take to flush, in ms. */
  readonly closeGrace: number;
  /**
   * The line writes wait in; the hub shares one among all its channels.
   * Default: one shared by every channel made without one, with no stall limit.
   */
  readonly writes?: WriteScheduler | undefined;
}
