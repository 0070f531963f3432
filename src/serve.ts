import { createApiHandler, type NodesInfo } from "./api/push_api.ts";
import { createLogger } from "./log.ts";
import { Comet, type CometOptions } from "./server/comet.ts";
import { type ListenOptions, listenTcp, type TcpAcceptor } from "./transport/tcp.ts";

/** Options for {@linkcode serve}. Durations are in milliseconds. */
export interface ServeOptions extends CometOptions {
  /** Where goim clients connect over TCP; `false` to not listen. Default 127.0.0.1:3101. */
  tcp?: ListenOptions | false;
  /** Where the push API listens; `false` to not listen. Default 127.0.0.1:3111. */
  api?: ListenOptions | false;
  /** Bearer token the push API requires. */
  apiToken?: string;
  /** Largest push body the API accepts, in bytes. Default 1 MiB. */
  maxPushBody?: number;
  /** Domain `/goim/nodes/weighted` reports. Default: the TCP hostname. */
  domain?: string;
  /** How long a shutdown may take before connections are cut off. Default 5 s. */
  shutdownTimeout?: number;
}

/** The listening addresses of a running {@linkcode CometServer}. */
export interface ServerAddrs {
  /** TCP listener, when enabled. */
  tcp?: Deno.NetAddr;
  /** Push API listener, when enabled. */
  api?: Deno.NetAddr;
}

/**
 * A running Comet: the hub, its TCP acceptor and its push API. Shut it down
 * with {@linkcode CometServer.shutdown} or `await using`.
 */
export class CometServer implements AsyncDisposable {
  /** The hub: push to it directly, read its stats. */
  readonly comet: Comet;
  /** Where the server listens. */
  readonly addrs: ServerAddrs;
  /** Settles once the server has shut down. */
  readonly finished: Promise<void>;
  #tcp: TcpAcceptor | undefined;
  #api: Deno.HttpServer<Deno.NetAddr> | undefined;
  #apiStopping: AbortController | undefined;
  #shutdownTimeout: number;
  #done!: () => void;
  #shutdown: Promise<void> | undefined;

  /** Use {@linkcode serve} to create one. */
  constructor(
    comet: Comet,
    tcp: TcpAcceptor | undefined,
    api: Deno.HttpServer<Deno.NetAddr> | undefined,
    shutdownTimeout: number,
    apiStopping?: AbortController,
  ) {
    this.comet = comet;
    this.#tcp = tcp;
    this.#api = api;
    this.#apiStopping = apiStopping;
    this.#shutdownTimeout = shutdownTimeout;
    const addrs: ServerAddrs = {};
    if (tcp) addrs.tcp = tcp.addr;
    if (api) addrs.api = api.addr;
    this.addrs = addrs;
    this.finished = new Promise((resolve) => (this.#done = resolve));
  }

  /**
   * Stops accepting, sends op 6 to every client, flushes and closes them,
   * then stops the API. Each of the two phases takes at most the shutdown
   * timeout. Idempotent.
   */
  shutdown(): Promise<void> {
    return this.#shutdown ??= (async () => {
      try {
        this.#tcp?.close();
        await this.#tcp?.finished;
        await this.comet.close(this.#shutdownTimeout);
      } finally {
        try {
          await this.#stopApi(this.#shutdownTimeout);
        } finally {
          this.#done();
        }
      }
    })();
  }

  /**
   * Stops the push API within `timeout` ms. Deno's HTTP shutdown waits for every
   * connection with a request in flight, and for one whose client stalls
   * mid-body it would wait forever: pushes still reading a body are failed
   * with 503, and a connection still open after `timeout` is left behind
   * (unref'd, so it no longer keeps the process alive).
   */
  async #stopApi(timeout: number): Promise<void> {
    const api = this.#api;
    if (!api) return;
    this.#apiStopping?.abort();
    const stopped = api.shutdown().then(() => false);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeout);
    });
    try {
      if (await Promise.race([stopped, late])) {
        this.comet.logger.warn("API shutdown timed out; leaving its last connections behind");
        api.unref();
        stopped.catch(() => {});
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Same as {@linkcode CometServer.shutdown}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

/**
 * Starts a Comet server: the hub, a TCP listener for goim clients and the
 * goim push API.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./serve.ts";
 *
 * await using server = serve({
 *   tcp: { port: 3101 },
 *   api: { port: 3111 },
 *   operator: {
 *     connect({ body }) {
 *       const { user } = JSON.parse(new TextDecoder().decode(body));
 *       return { mid: user, room: "live://lobby", accepts: [1000] };
 *     },
 *   },
 * });
 * server.comet.pushRoom("live://lobby", 1000, new TextEncoder().encode("hi"));
 * ```
 */
export function serve(options: ServeOptions = {}): CometServer {
  const { signal, ...rest } = options;
  const logger = options.logger ?? createLogger({ level: "info" });
  const comet = new Comet({ ...rest, logger });
  let tcp: TcpAcceptor | undefined;
  let api: Deno.HttpServer<Deno.NetAddr> | undefined;
  const apiStopping = new AbortController();
  try {
    if (options.tcp !== false) {
      tcp = listenTcp(comet, options.tcp ?? { hostname: "127.0.0.1", port: 3101 });
    }
    if (options.api !== false) {
      const at = options.api ?? { hostname: "127.0.0.1", port: 3111 };
      const tcpPort = tcp?.addr.port ?? 0;
      const domain = options.domain ?? tcp?.addr.hostname ?? "127.0.0.1";
      // host:port needs brackets around an IPv6 literal (`[::1]:3101`).
      const host = domain.includes(":") && !domain.startsWith("[") ? `[${domain}]` : domain;
      const heartbeat = Math.max(1, Math.round(comet.heartbeatTimeout / 2 / 1000));
      const nodes = (): NodesInfo => ({
        domain,
        tcpPort,
        wsPort: 0,
        wssPort: 0,
        heartbeat,
        heartbeatMax: 2,
        addrs: tcp ? [`${host}:${tcpPort}`] : [],
        domains: [domain],
      });
      const apiOptions = {
        nodes,
        signal: apiStopping.signal,
        ...(options.apiToken !== undefined && { token: options.apiToken }),
      };
      api = Deno.serve(
        {
          hostname: at.hostname ?? "127.0.0.1",
          port: at.port,
          onListen() {},
          onError(err) {
            logger.error("API handler failed", { error: err });
            // Every API response is the goim envelope, this one too.
            return Response.json({ code: -500, message: "Internal server error", data: null }, {
              status: 500,
            });
          },
        },
        createApiHandler(comet, {
          ...apiOptions,
          ...(options.maxPushBody !== undefined && { maxBody: options.maxPushBody }),
        }),
      );
    }
  } catch (err) {
    tcp?.close();
    void comet.close(0);
    throw err;
  }
  const server = new CometServer(comet, tcp, api, options.shutdownTimeout ?? 5_000, apiStopping);
  if (signal?.aborted) void server.shutdown();
  else signal?.addEventListener("abort", () => void server.shutdown(), { once: true });
  return server;
}
