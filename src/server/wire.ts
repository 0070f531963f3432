import type { Frame } from "../protocol/frame.ts";

/**
 * A network address of a peer or listener.
 *
 * @example
 * ```ts
 * import type { PeerAddr } from "./wire.ts";
 *
 * const peer: PeerAddr = { hostname: "203.0.113.7", port: 51234 };
 * ```
 */
export interface PeerAddr {
  /** IP address or host name. */
  hostname: string;
  /** Port number. */
  port: number;
}

/**
 * What the core knows about a connection's transport.
 *
 * @example
 * ```ts
 * import type { ConnInfo } from "./wire.ts";
 *
 * const info: ConnInfo = {
 *   transport: "ws",
 *   remoteAddr: { hostname: "203.0.113.7", port: 51234 },
 *   headers: new Headers({ origin: "https://app.example" }),
 * };
 * ```
 */
export interface ConnInfo {
  /** Transport name: `"tcp"`, `"tls"`, `"ws"`, `"wss"`, `"pkg"` ... */
  transport: string;
  /** The client's address. */
  remoteAddr: PeerAddr;
  /**
   * Request headers of a WebSocket upgrade (cookie, origin), where there was
   * one. Only available until the operator's `connect` returns: the hub
   * drops them afterwards to keep idle connections small, so an operator that
   * needs a header later copies it in `connect`.
   */
  headers?: Headers | undefined;
}

/**
 * Where a listening wire (see {@linkcode Wire._listen}) hands its frames:
 * the hub's side of one connection.
 *
 * @example
 * ```ts
 * import type { Frame } from "../protocol/frame.ts";
 * import type { FrameReader } from "./wire.ts";
 *
 * // What a wire's `_listen` does: hand frames over until the reader stops.
 * async function pump(frames: AsyncIterable<Frame>, reader: FrameReader): Promise<void> {
 *   for await (const frame of frames) if (!await reader._frame(frame)) return;
 *   reader._ended();
 * }
 * ```
 */
export interface FrameReader {
  /**
   * A frame arrived. `true`: hand over the next one; `false`: stop, the
   * reader is done with this connection; a promise: hand over the next one
   * once it resolves `true`.
   */
  _frame(frame: Frame): boolean | Promise<boolean>;
  /**
   * The stream ended: the peer left, the wire was closed, or the peer broke
   * the protocol (`err`, a `ProtocolError`). Called once, and not
   * after `_frame` has returned `false`.
   */
  _ended(err?: unknown): void;
}

/**
 * The one interface between a transport and the comet core. A transport turns
 * bytes into frames (`read`) and frames into bytes (`encode`, `write`); the
 * core never sees sockets, so adding a transport never touches the hub.
 *
 * @example
 * ```ts
 * import type { Comet } from "./comet.ts";
 * import type { Wire } from "./wire.ts";
 *
 * // A transport hands each accepted connection to the hub as a wire.
 * function accept(comet: Comet, wire: Wire): void {
 *   void comet.serve(wire);
 * }
 * ```
 */
export interface Wire {
  /** Transport facts handed to the operator at auth. */
  readonly info: ConnInfo;
  /**
   * Resolves with the next inbound frame, or `null` once the peer is gone or
   * the wire was closed.
   *
   * @throws {ProtocolError} When the peer breaks the protocol.
   */
  read(): Promise<Frame | null>;
  /**
   * Turns `count` encoded goim frames (`chunks[0..count)`, `bytes` long in
   * total) into the bytes of one socket write. Synchronous: the chunks array
   * is reused as soon as it returns.
   */
  encode(chunks: readonly Uint8Array[], count: number, bytes: number): Uint8Array;
  /**
   * Set when `encode` is a pure function of the frames, the same for every
   * wire with this same value: such wires may be handed the bytes another of
   * them encoded for the same run of room pushes, so that a room's members
   * share one encoding instead of each making its own. A run that ends with
   * op 6 (DisconnectReply) is never shared. Undefined: never shared.
   */
  readonly sharedEncoding?: object | undefined;
  /**
   * Optional, for transports that hold many idle connections: after the
   * handshake the hub calls this once instead of calling `read` in a loop,
   * and the wire hands each frame to `reader` as it is decoded. An idle
   * connection then waits on its socket read alone, with no continuation of
   * the hub's waiting on it. Frames already buffered go first.
   */
  _listen?(reader: FrameReader): void;
  /**
   * Optional, for wires whose handshake can name a different client than
   * the socket's peer (a WebSocket upgrade through a trusted proxy): the hub
   * calls this at most once, before reading, and the wire calls `known` as
   * soon as `info.remoteAddr` is final, before it hands over a frame.
   */
  _whenClientKnown?(known: () => void): void;
  /**
   * Writes all of `data`; rejects when the connection is gone. Resolves
   * `true` when the socket did not take it all at once (the peer reads
   * slower than it is written to), which the hub's slow-consumer rule
   * counts; anything else reads as taken at once.
   */
  write(data: Uint8Array): Promise<boolean | void>;
  /** Closes the connection at once. Idempotent. */
  close(): void;
}
