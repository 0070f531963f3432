import { DEFAULTS } from "../defaults.ts";
import { createLogger, type Logger } from "../log.ts";
import { acceptErrorKind, AcceptErrorLog } from "../transport/accept_errors.ts";
import { closeQuietly } from "../transport/traffic.ts";
import { HttpConnection, refusal, writeAll } from "./http_connection.ts";
import type { HttpContext, HttpHandler, HttpLimits, HttpServerStats } from "./http_context.ts";

export type { HttpHandler, HttpLimits, HttpServerStats } from "./http_context.ts";

/** What the `comet` command's push API listens with. */
export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  headerTimeout: DEFAULTS.apiHeaderTimeout,
  bodyTimeout: DEFAULTS.apiBodyTimeout,
  idleTimeout: DEFAULTS.apiIdleTimeout,
  maxConnections: DEFAULTS.apiMaxConnections,
  maxHeaderBytes: DEFAULTS.apiMaxHeaderBytes,
});

/** Options for {@linkcode HttpServer}. */
export interface HttpServerOptions extends Partial<HttpLimits> {
  /** The listener's name in logs and in `comet_accept_errors_total`. Default `api`. */
  name?: string;
  /** Where accept failures go, at most one line per interval. Default: stderr at info. */
  logger?: Logger;
  /** The response when the handler throws. Default: a bare 500. */
  onError?: (err: unknown) => Response;
}

/** Refusals being written at once; past it, connections beyond the cap are closed unanswered. */
const _MAX_REFUSALS = 64;
/** How long a refused connection may take to read its 503. */
const _REFUSAL_LINGER = 250;

/**
 * Answers 503 once the client has sent something (an answer before the
 * request is one an HTTP client may refuse to read), then reads on until it
 * closes (closing on an unread request would reset the connection and the
 * client would see the reset, not the 503); all within a short time.
 */
async function _shed(conn: Deno.Conn): Promise<void> {
  const timer = setTimeout(() => closeQuietly(conn), _REFUSAL_LINGER);
  try {
    const sink = new Uint8Array(4096);
    if (await conn.read(sink) === null) return;
    await writeAll(conn, refusal(503, "Too many connections"));
    await conn.closeWrite();
    while (await conn.read(sink) !== null) { /* until the client closes, or the timer */ }
  } catch {
    // Reset, or closed by the timer.
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/**
 * A small, strict HTTP/1.1 server on a listener of its own, for the push
 * API: `Deno.serve` ends its accept loop for good on the first `EMFILE`
 * (and the process with it, unless its `finished` is caught) and has no
 * header or body deadlines, idle timeout or connection cap, so one client
 * holding sockets could silence the API or kill the process. This one
 * backs off and keeps accepting when the process is out of descriptors
 * (logged once per interval, counted in `acceptErrors()`), letting one
 * connection in at a time on a descriptor it holds back (an open
 * `/dev/null`, with read permission for it), answers 503
 * beyond `maxConnections`, 408 to a request whose headers or body come
 * late, 400 to a malformed one, 431 to oversize headers, and closes
 * kept-alive connections left idle. Request bodies, `Content-Length` or
 * chunked, stream to the handler as it reads them; responses are
 * buffered and written with `Content-Length`.
 *
 * @example
 * ```ts ignore
 * import { HttpServer } from "./http_server.ts";
 *
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 3111 });
 * const server = new HttpServer(listener, () => Promise.resolve(new Response("ok")), {
 *   headerTimeout: 5_000,
 * });
 * await server.shutdown(5_000);
 * ```
 */
export class HttpServer implements AsyncDisposable {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** Settles when the server has stopped accepting and every connection has ended. */
  readonly finished: Promise<void>;
  readonly #listener: Deno.Listener;
  readonly #conns = new Set<HttpConnection>();
  readonly #refusals = new Set<Promise<void>>();
  readonly #errors: AcceptErrorLog;
  readonly #shared: HttpContext;
  /** One timer for every deadline: a timer per request would cost more than the request. */
  readonly #tick: number;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  /**
   * A descriptor held back for the API: out of descriptors, it is given up
   * to accept one connection, so that `/healthz`, `/metrics` and pushes still
   * get through one at a time (the clients took the rest); taken again as
   * soon as a connection closes.
   */
  #spare: Deno.FsFile | undefined;
  #mayKeepSpare = false;

  /**
   * Starts serving on `listener`, which it owns from then on.
   *
   * @throws {RangeError} When a limit is not a positive number.
   */
  constructor(listener: Deno.Listener, handler: HttpHandler, options: HttpServerOptions = {}) {
    const limits = { ...DEFAULT_HTTP_LIMITS };
    for (const key of Object.keys(limits) as (keyof HttpLimits)[]) {
      const value = options[key];
      if (value === undefined) continue;
      if (!(value > 0)) {
        listener.close();
        throw new RangeError(`HTTP ${key} must be above 0: ${value}`);
      }
      limits[key] = value;
    }
    this.#listener = listener;
    this.addr = listener.addr as Deno.NetAddr;
    const shortest = Math.min(limits.headerTimeout, limits.bodyTimeout, limits.idleTimeout);
    this.#tick = Math.min(1_000, Math.max(5, Math.floor(shortest / 10)));
    this.#shared = {
      limits,
      handler,
      onError: options.onError ?? (() => new Response(null, { status: 500 })),
      stats: {
        accepted: 0,
        refused: 0,
        headerTimeouts: 0,
        bodyTimeouts: 0,
        idleTimeouts: 0,
        badRequests: 0,
      },
      addr: this.addr,
      stopping: false,
    };
    this.#errors = new AcceptErrorLog(
      options.name ?? "api",
      options.logger ?? createLogger({ level: "info" }),
    );
    try {
      // Asked, not tried: a read without the permission may prompt for it.
      this.#mayKeepSpare =
        Deno.permissions.querySync({ name: "read", path: "/dev/null" }).state === "granted";
    } catch {
      // No permissions API: no spare.
    }
    this.#keepSpare();
    this.finished = this.#accept().then(() => this.#drained());
  }

  /** Connections open now. */
  get connections(): number {
    return this.#conns.size;
  }

  /** A copy of the counters. */
  get stats(): HttpServerStats {
    return { ...this.#shared.stats };
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#closed || err instanceof Deno.errors.BadResource) return;
        // Out of descriptors, say: the connections already open are served all the while,
        // the new ones wait in the backlog until some close, but for one the spare lets in.
        this.#errors.failed(err);
        const kind = acceptErrorKind(err);
        if (this.#spare && (kind === "emfile" || kind === "enfile")) {
          this.#spare.close();
          this.#spare = undefined;
          continue;
        }
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (this.#conns.size >= this.#shared.limits.maxConnections) {
        this.#shared.stats.refused++;
        if (this.#refusals.size >= _MAX_REFUSALS) {
          closeQuietly(conn);
          continue;
        }
        const shed: Promise<void> = _shed(conn).finally(() => this.#refusals.delete(shed));
        this.#refusals.add(shed);
        continue;
      }
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch {
        // The peer may already be gone.
      }
      this.#shared.stats.accepted++;
      const connection = new HttpConnection(this.#shared, conn);
      this.#conns.add(connection);
      this.#sweeper ??= setInterval(() => {
        const now = performance.now();
        for (const c of this.#conns) c.check(now);
        this.#keepSpare();
      }, this.#tick);
      void connection.done.then(() => {
        this.#conns.delete(connection);
        this.#keepSpare();
        if (this.#conns.size === 0) {
          clearInterval(this.#sweeper);
          this.#sweeper = undefined;
        }
      });
    }
  }

  #keepSpare(): void {
    if (this.#spare || !this.#mayKeepSpare || this.#closed) return;
    try {
      this.#spare = Deno.openSync("/dev/null");
    } catch {
      // Out of descriptors still: the next closed connection frees one.
    }
  }

  async #drained(): Promise<void> {
    while (this.#conns.size > 0 || this.#refusals.size > 0) {
      await Promise.all([...[...this.#conns].map((c) => c.done), ...this.#refusals]);
    }
  }

  /** Stops accepting; open connections are served on. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#spare?.close();
    this.#spare = undefined;
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
  }

  /**
   * Stops accepting, closes idle connections, lets requests in flight be
   * answered (with `Connection: close`), and closes whatever is still open
   * after `timeout` ms. Resolves true when nothing had to be cut off.
   */
  async shutdown(timeout = Infinity): Promise<boolean> {
    this.#shared.stopping = true;
    this.close();
    for (const c of this.#conns) c.stop();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((r) => {
      if (timeout !== Infinity) timer = setTimeout(() => r(false), timeout);
    });
    const clean = await Promise.race([this.finished.then(() => true), late]);
    clearTimeout(timer);
    if (!clean) { for (const c of this.#conns) c.abort(); }
    await this.finished;
    return clean;
  }

  /** Same as {@linkcode HttpServer.shutdown} without a timeout. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
