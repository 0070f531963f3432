/**
 * What the push API's `HttpServer` and its connections share: the handler,
 * the limits, the counters and the context that carries them. Both sides
 * import it, so neither imports the other's module for its types.
 *
 * @module
 */

/** A request handler, as `Deno.serve` takes and `createApiHandler` makes. */
export type HttpHandler = (request: Request) => Promise<Response>;

/** Limits of an `HttpServer`. Durations are in milliseconds. */
export interface HttpLimits {
  /** A request's line and headers must arrive within this of its first byte (of the accept, for a connection's first request). */
  headerTimeout: number;
  /** A request's body must arrive within this of the end of its headers. */
  bodyTimeout: number;
  /** A kept-alive connection may wait this long for its next request; a response may take this long to write. */
  idleTimeout: number;
  /** Connections at once; more are answered 503 and closed. */
  maxConnections: number;
  /** Largest request line and headers together, in bytes; more is answered 431. */
  maxHeaderBytes: number;
}

/** Counters of an `HttpServer` since it started. */
export interface HttpServerStats {
  /** Connections accepted and served. */
  accepted: number;
  /** Connections answered 503 at `maxConnections`. */
  refused: number;
  /** Requests answered 408: headers late. */
  headerTimeouts: number;
  /** Requests answered 408: body late. */
  bodyTimeouts: number;
  /** Connections closed for waiting too long for their next request, or for not taking their answer. */
  idleTimeouts: number;
  /** Requests the server refused itself (400, 413, 417, 431, 501, 505), before any handler. */
  badRequests: number;
}

/** What an `HttpServer` shares with its connections. */
export interface HttpContext {
  /** Deadlines and sizes. */
  limits: HttpLimits;
  /** Makes the answer to each request. */
  handler: HttpHandler;
  /** The answer when the handler throws. */
  onError: (err: unknown) => Response;
  /** The server's counters, which connections add to. */
  stats: HttpServerStats;
  /** The listener's address: the URL's authority when a request's Host will not do. */
  addr: Deno.NetAddr;
  /** Once true, connections close after their request in flight. */
  stopping: boolean;
}
