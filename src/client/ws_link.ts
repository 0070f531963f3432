import { ProtocolError } from "../protocol/protocol_error.ts";
import { ConnectionClosedError } from "./connection_closed_error.ts";
import type { Link, LinkOptions } from "./link.ts";
import { readFrames } from "./read_frames.ts";

/**
 * Makes the socket for a URL; lets a runtime add options browsers do not have.
 *
 * @example
 * ```ts
 * import type { WebSocketFactory } from "./ws_link.ts";
 *
 * const withProtocol: WebSocketFactory = (url) => new WebSocket(url, "goim");
 * ```
 */
export type WebSocketFactory = (url: string) => WebSocket;

const _newWebSocket: WebSocketFactory = (url) => new WebSocket(url);

/**
 * Opens a goim connection over WebSocket (`ws://host:port/sub`,
 * `wss://...`) with nothing but the standard `WebSocket` API, so it runs in
 * browsers and Deno alike. Each binary message the server sends holds one
 * frame, or one op-9 batch; frames sent go out as one message each, which
 * the socket never interleaves.
 *
 * @param url A `ws:` or `wss:` URL.
 * @param options Frame callback and abort signal.
 * @param createSocket Makes the socket; `new WebSocket(url)` by default.
 * @throws {TypeError} When the URL is not `ws:` or `wss:`.
 * @throws {ConnectionClosedError} When the socket closes before it opens.
 *
 * @example
 * ```ts ignore
 * import { Client, openWsLink } from "../../mod.ts";
 *
 * const client = new Client("ws://127.0.0.1:3102/sub", { mid: 1, link: openWsLink });
 * await client.opened;
 * ```
 */
export function openWsLink(
  url: URL,
  options: LinkOptions,
  createSocket: WebSocketFactory = _newWebSocket,
): Promise<Link> {
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    return Promise.reject(new TypeError(`WebSocket link needs a ws:// or wss:// URL: ${url.href}`));
  }
  const signal = options.signal;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    let ws: WebSocket;
    try {
      ws = createSocket(url.href);
    } catch (err) {
      reject(err);
      return;
    }
    ws.binaryType = "arraybuffer";
    const onAbort = () => ws.close();
    const settle = () => {
      ws.removeEventListener("open", onOpen);
      ws.removeEventListener("close", onClose);
      signal?.removeEventListener("abort", onAbort);
    };
    const onOpen = () => {
      settle();
      resolve(new _WsLink(ws, url.href, options));
    };
    // Rejecting only on "close", never on "error", means the socket is released first.
    const onClose = (event: CloseEvent) => {
      settle();
      reject(
        signal?.aborted ? signal.reason : new ConnectionClosedError(
          `Connecting to ${url.href} failed: WebSocket closed with code ${event.code}`,
        ),
      );
    };
    ws.addEventListener("open", onOpen);
    ws.addEventListener("close", onClose);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

class _WsLink implements Link {
  readonly closed: Promise<Error>;
  #ws: WebSocket;
  #href: string;
  #onFrame: LinkOptions["onFrame"];
  #reason: Error | undefined;

  constructor(ws: WebSocket, href: string, options: LinkOptions) {
    this.#ws = ws;
    this.#href = href;
    this.#onFrame = options.onFrame;
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (event) => {
        this.#reason ??= new ConnectionClosedError(
          `Server closed the WebSocket: code ${event.code}${
            event.reason ? `, ${event.reason}` : ""
          }`,
        );
        resolve(this.#reason);
      }, { once: true });
    });
    ws.addEventListener("message", (event) => this.#message(event));
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(frame: Uint8Array): void {
    if (this.#reason || this.#ws.readyState !== WebSocket.OPEN) {
      const detail = this.#reason?.message ?? this.#href;
      throw new ConnectionClosedError(`Connection is closed: ${detail}`);
    }
    this.#ws.send(frame);
  }

  close(reason?: Error): void {
    if (this.#reason) return;
    this.#reason = reason ?? new ConnectionClosedError(`Connection closed: ${this.#href}`);
    this.#ws.close(1000);
  }

  #message(event: MessageEvent): void {
    // Closed by us: messages still in flight are no longer wanted.
    if (this.#reason) return;
    const data = event.data;
    if (!(data instanceof ArrayBuffer)) {
      this.close(new ProtocolError("Server sent a text message; goim messages are binary"));
      return;
    }
    try {
      readFrames(new Uint8Array(data), this.#onFrame);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.close(err);
    }
  }
}
