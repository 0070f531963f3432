import { type ApiOptions, createApiHandler } from "./api/push_api.ts";
import type { Comet } from "./server/comet.ts";
import type { PeerAddr } from "./server/wire.ts";
import { forwardedClient } from "./transport/forwarded_for.ts";
import { SocketWire, type SocketWireOptions } from "./transport/socket_wire.ts";

/**
 * Options for {@linkcode createCometHandler}.
 *
 * @example
 * ```ts
 * import type { CometHandlerOptions } from "./handler.ts";
 *
 * const options: CometHandlerOptions = {
 *   path: "/sub",
 *   api: { token: "a long random secret" },
 *   highWaterMark: 512 * 1024,
 * };
 * ```
 */
export interface CometHandlerOptions {
  /** Path WebSocket upgrades are accepted on. Default `/sub`, as goim's. */
  path?: string;
  /**
   * Serve the goim push API (see {@linkcode createApiHandler}) for every
   * request that is not an upgrade; `false` or absent answers them 404. Give
   * it a `token` wherever the origin is public.
   */
  api?: ApiOptions | false;
  /** Transport name the operator sees. Default `"ws"`. */
  transport?: string;
  /** Unsent bytes per socket before its writes stall. Default 1 MiB. See {@linkcode SocketWire}. */
  highWaterMark?: number;
  /** A stalled write resumes at this many unsent bytes. Default half the high-water mark. */
  lowWaterMark?: number;
  /** Unread inbound frames per socket before it counts as flooding. Default 64. */
  maxPending?: number;
}

/**
 * A `Deno.serve` handler: goim WebSocket upgrades, and optionally the push API.
 *
 * @example
 * ```ts
 * import { Comet } from "./server/comet.ts";
 * import { type CometHandler, createCometHandler } from "./handler.ts";
 *
 * await using comet = new Comet();
 * const handler: CometHandler = createCometHandler(comet, { path: "/sub" });
 * await using server = Deno.serve({ port: 0, onListen() {} }, handler);
 * ```
 */
export type CometHandler = (
  request: Request,
  info: Deno.ServeHandlerInfo,
) => Response | Promise<Response>;

const _WEBSOCKET = /(?:^|,)\s*websocket\s*(?:,|$)/i;

function _text(status: number, message: string): Response {
  return new Response(message + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

function _peer(addr: Deno.Addr): PeerAddr {
  return addr.transport === "tcp" || addr.transport === "udp"
    ? { hostname: addr.hostname, port: addr.port }
    : { hostname: "0.0.0.0", port: 0 };
}

/**
 * A request handler to mount in your own `Deno.serve` (or export from a
 * `deno serve` module): a `GET` upgrade to WebSocket on `path` becomes a
 * goim connection of `comet` over a {@linkcode SocketWire}; with `api`,
 * every other request goes to the goim push API; else it gets 404.
 *
 * Deno's own ping timer (`idleTimeout`) is turned off for these sockets: the
 * hub's heartbeat deadline already covers silent clients, without a timer
 * per connection.
 *
 * @throws {TypeError} When `path` does not start with `/`.
 *
 * @example
 * ```ts ignore
 * import { Comet } from "./server/comet.ts";
 * import { createCometHandler } from "./handler.ts";
 *
 * const comet = new Comet();
 * const goim = createCometHandler(comet, { api: { token: "secret" } });
 * Deno.serve({ port: 8000 }, (req, info) => {
 *   const { pathname } = new URL(req.url);
 *   if (pathname === "/sub" || pathname.startsWith("/goim/")) return goim(req, info);
 *   return new Response("my app");
 * });
 * ```
 */
export function createCometHandler(comet: Comet, options: CometHandlerOptions = {}): CometHandler {
  const path = options.path ?? "/sub";
  if (!path.startsWith("/")) throw new TypeError(`Path must start with "/": ${path}`);
  const api = options.api ? createApiHandler(comet, options.api) : undefined;
  const wireOptions: SocketWireOptions = { maxBody: comet.maxBody };
  if (options.transport !== undefined) wireOptions.transport = options.transport;
  if (options.highWaterMark !== undefined) wireOptions.highWaterMark = options.highWaterMark;
  if (options.lowWaterMark !== undefined) wireOptions.lowWaterMark = options.lowWaterMark;
  if (options.maxPending !== undefined) wireOptions.maxPending = options.maxPending;
  SocketWire.checkOptions(wireOptions);

  return (request, info) => {
    const upgrade = request.headers.get("upgrade");
    if (upgrade === null || !_WEBSOCKET.test(upgrade)) {
      if (api) return api(request);
      return _text(404, `Not found: ${_pathname(request)}`);
    }
    if (_pathname(request) !== path) return _text(404, `Not found: ${_pathname(request)}`);
    // A connection accepted now would be closed at once.
    if (comet.closing) return _text(503, "Shutting down");
    // Copy before upgrading: the request's address and headers are gone after it.
    // Behind a trusted proxy, the client it names (the hub's limits count that address).
    const remoteAddr = forwardedClient(
      _peer(info.remoteAddr),
      request.headers,
      comet.trustedProxies,
    );
    const headers = new Headers(request.headers);
    let upgraded: Deno.WebSocketUpgrade;
    try {
      upgraded = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
    } catch (err) {
      return _text(400, `Bad WebSocket upgrade: ${(err as Error).message}`);
    }
    const wire = new SocketWire(upgraded.socket, {
      ...wireOptions,
      remoteAddr,
      headers,
    });
    comet._serve(wire);
    return upgraded.response;
  };
}

/** The request's path, without parsing its Host: the URL parser refuses some (`Host: a b`). */
function _pathname(request: Request): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(request.url);
  return m?.[1] || "/";
}
