import type { Frame } from "../protocol/frame.ts";

/**
 * What a {@linkcode LinkOpener} is given for one connection.
 *
 * @example
 * ```ts
 * import type { LinkOptions } from "./link.ts";
 *
 * const options: LinkOptions = {
 *   onFrame: (frame) => console.log("op", frame.op),
 *   signal: new AbortController().signal,
 *   maxBody: 1024 * 1024,
 * };
 * ```
 */
export interface LinkOptions {
  /**
   * Called with every frame the server sends, in order, until the link is
   * closed. An op-9 batch is passed as it came; the client unpacks it.
   */
  onFrame(frame: Frame): void;
  /** Aborting gives the connection attempt up; the opener rejects with the reason. */
  signal?: AbortSignal;
  /** Extra PEM root certificates to trust, for `tls://` (and `wss://` on Deno). */
  caCerts?: string[];
  /** Largest frame body accepted from a stream transport, in bytes. */
  maxBody?: number;
}

/**
 * One open connection to a server, carrying whole goim frames both ways. A
 * {@linkcode Client} owns one link at a time and replaces it when it drops.
 *
 * @example
 * ```ts
 * import type { Link } from "./link.ts";
 *
 * async function hangUp(link: Link): Promise<void> {
 *   link.close();
 *   console.log("link closed:", (await link.closed).message);
 * }
 * ```
 */
export interface Link {
  /**
   * Queues one encoded frame. Frames leave whole and in call order, never
   * interleaved with another frame's bytes.
   *
   * @throws {ConnectionClosedError} When the link is closed.
   */
  send(frame: Uint8Array): void;
  /** Bytes queued by {@linkcode Link.send} that have not been handed to the network. */
  readonly bufferedAmount: number;
  /**
   * Closes the connection; idempotent. `reason` becomes what
   * {@linkcode Link.closed} resolves with unless the link already ended.
   */
  close(reason?: Error): void;
  /**
   * Resolves once the connection is gone and its resources are released,
   * with why it ended: the reason given to {@linkcode Link.close}, or an error
   * describing the peer's close or the failure.
   */
  readonly closed: Promise<Error>;
}

/**
 * Opens a {@linkcode Link} to `url`. Rejects when the connection cannot be
 * made, with a {@linkcode ConnectionClosedError} that says why.
 *
 * @example
 * ```ts ignore
 * import { Client, type LinkOpener, openWsLink } from "../../mod.ts";
 *
 * // Log every connection attempt, then open it as usual.
 * const link: LinkOpener = (url, options) => {
 *   console.log("connecting to", url.href);
 *   return openWsLink(url, options);
 * };
 * const client = new Client("ws://127.0.0.1:3102/sub", { link });
 * await client.opened;
 * ```
 */
export type LinkOpener = (url: URL, options: LinkOptions) => Promise<Link>;
