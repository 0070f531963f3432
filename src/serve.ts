import { HttpServer } from "./api/http_server.ts";
import { createApiHandler, type NodesInfo } from "./api/push_api.ts";
import { isLoopback } from "./auth/open_guard.ts";
import type { Cluster, NodeAddress } from "./cluster/cluster.ts";
import { MemoryCluster } from "./cluster/memory_cluster.ts";
import { DEFAULTS } from "./defaults.ts";
import { createLogger, type Logger } from "./log.ts";
import { Comet, type CometOptions } from "./server/comet.ts";
import { MemoryHistory } from "./server/memory_history.ts";
import { DefaultOperator } from "./server/operator.ts";
import type { HistoryLimits, StreamHistory } from "./server/streams.ts";
import {
  type Acceptor,
  bindListener,
  type ListenOptions,
  type TlsCertificate,
} from "./transport/acceptor.ts";
import { hostPort } from "./host_port.ts";
import { listenPkg, type PkgListenOptions } from "./transport/pkg.ts";
import { listenTcp } from "./transport/tcp.ts";
import { listenWs } from "./transport/websocket.ts";

/**
 * A WebSocket listener: address and upgrade path (default `/sub`).
 *
 * @example
 * ```ts
 * import type { WsServeOptions } from "./serve.ts";
 *
 * const ws: WsServeOptions = { hostname: "0.0.0.0", port: 3102, path: "/goim/sub" };
 * ```
 */
export interface WsServeOptions extends ListenOptions {
  /** Path upgrades are accepted on. Default `/sub`. */
  path?: string;
}

/**
 * Options for {@linkcode serve}. Durations are in milliseconds.
 *
 * @example
 * ```ts
 * import type { ServeOptions } from "./serve.ts";
 *
 * const options: ServeOptions = {
 *   tcp: { hostname: "0.0.0.0", port: 3101 },
 *   ws: { hostname: "0.0.0.0", port: 3102, path: "/sub" },
 *   api: { hostname: "0.0.0.0", port: 3111 },
 *   apiToken: "a long random secret",
 * };
 * ```
 */
export interface ServeOptions extends CometOptions {
  /** goim binary protocol over TCP; `false` for none. Default {@linkcode DEFAULTS}`.tcp`. */
  tcp?: ListenOptions | false;
  /** goim over WebSocket; `false` for none. Default {@linkcode DEFAULTS}`.ws`, path `/sub`. */
  ws?: WsServeOptions | false;
  /** Certificate and key for the TLS listeners `tcpTls` and `wss`. */
  tls?: TlsCertificate;
  /** goim binary protocol over TLS; needs `tls`. Default: none. */
  tcpTls?: ListenOptions | false;
  /** goim over secure WebSocket; needs `tls`. Default with `tls`: {@linkcode DEFAULTS}`.wss`. */
  wss?: WsServeOptions | false;
  /** gf gtcp "pkg" framing; `false` for none. Default: none. */
  pkg?: PkgListenOptions | false;
  /**
   * Where the push API listens; `false` to not listen. Default {@linkcode DEFAULTS}`.api`.
   * Without `apiToken` it must be a loopback address.
   */
  api?: ListenOptions | false;
  /** Bearer token the push API requires; needed to listen beyond loopback. */
  apiToken?: string;
  /** Largest push body the API accepts, in bytes. Default {@linkcode DEFAULTS}`.maxPushBody`. */
  maxPushBody?: number;
  /** How long the API waits for a request's line and headers. Default {@linkcode DEFAULTS}`.apiHeaderTimeout`. */
  apiHeaderTimeout?: number;
  /** How long the API waits for a request's body once its headers are in. Default {@linkcode DEFAULTS}`.apiBodyTimeout`. */
  apiBodyTimeout?: number;
  /** How long a kept-alive API connection may wait for its next request. Default {@linkcode DEFAULTS}`.apiIdleTimeout`. */
  apiIdleTimeout?: number;
  /** API connections at once; more are answered 503 and closed. Default {@linkcode DEFAULTS}`.apiMaxConnections`. */
  apiMaxConnections?: number;
  /**
   * Host name or address clients should use for this node: what
   * `/goim/nodes/weighted` and `/goim/nodes/instances` report, here and on
   * the other nodes of a cluster. Default: the TCP (else WebSocket) listen
   * hostname.
   */
  domain?: string;
  /**
   * The nodes this server shares pushes and online counts with, e.g. a
   * connected {@linkcode RedisCluster}. The server attaches it to its hub
   * (it becomes the hub's `observer`) and owns it from then on: shutdown,
   * or a `serve()` that throws, closes it. Default: a
   * {@linkcode MemoryCluster}, a single node.
   */
  cluster?: Cluster;
  /** How long a shutdown may take before connections are cut off. Default {@linkcode DEFAULTS}`.shutdownTimeout`. */
  shutdownTimeout?: number;
  /**
   * Pushes each stream keeps for clients that reconnect (docs/protocol.md,
   * section 8); 0 turns streams off. Without `history`, the hub gets its
   * cluster's history, else a {@linkcode MemoryHistory}. Default
   * {@linkcode DEFAULTS}`.historySize`.
   */
  historySize?: number;
  /** Milliseconds each stream keeps its pushes. Default {@linkcode DEFAULTS}`.historyTtl`. */
  historyTtl?: number;
  /**
   * Bytes a history in memory may hold in all; past it the least recently
   * used streams lose their pushes early (see {@linkcode MemoryHistory}).
   * Infinity: no cap. Default {@linkcode DEFAULTS}`.historyMemory`.
   */
  historyMemory?: number;
}

/**
 * The listening addresses of a running {@linkcode CometServer}, by listener.
 *
 * @example
 * ```ts
 * import { serve, type ServerAddrs } from "./serve.ts";
 *
 * await using server = serve({ tcp: { port: 0 }, ws: { port: 0 }, api: false });
 * const addrs: ServerAddrs = server.addrs;
 * console.log(addrs.tcp?.hostname, addrs.api); // 127.0.0.1 undefined
 * ```
 */
export interface ServerAddrs {
  /** TCP listener. */
  tcp?: Deno.NetAddr;
  /** WebSocket listener. */
  ws?: Deno.NetAddr;
  /** TLS listener. */
  tcpTls?: Deno.NetAddr;
  /** Secure WebSocket listener. */
  wss?: Deno.NetAddr;
  /** gtcp pkg listener. */
  pkg?: Deno.NetAddr;
  /** Push API listener. */
  api?: Deno.NetAddr;
}

/** The socket listeners of a server, by name. */
export type Acceptors = Partial<Record<Exclude<keyof ServerAddrs, "api">, Acceptor>>;

/**
 * A running Comet: the hub, its socket listeners and its push API. Shut it down
 * with {@linkcode CometServer.shutdown} or `await using`.
 *
 * @example
 * ```ts
 * import { type CometServer, serve } from "./serve.ts";
 *
 * const server: CometServer = serve({ tcp: { port: 0 }, ws: false, api: false });
 * console.log(server.addrs.tcp?.port !== 0); // true: a free port was picked
 * await server.shutdown();
 * ```
 */
export class CometServer implements AsyncDisposable {
  /** The hub: push to its own connections directly, read its stats. */
  readonly comet: Comet;
  /** The cluster the server is a node of: push through it to reach every node. */
  readonly cluster: Cluster;
  /** Where the server listens. */
  readonly addrs: ServerAddrs;
  /** Settles once the server has shut down. */
  readonly finished: Promise<void>;
  #acceptors: Acceptor[];
  #api: HttpServer | undefined;
  #apiStopping: AbortController | undefined;
  #shutdownTimeout: number;
  #done!: () => void;
  #shutdown: Promise<void> | undefined;

  /** Use {@linkcode serve} to create one. */
  constructor(
    comet: Comet,
    acceptors: Acceptors,
    api: HttpServer | undefined,
    shutdownTimeout: number,
    apiStopping?: AbortController,
    cluster?: Cluster,
  ) {
    this.comet = comet;
    this.cluster = cluster ?? _alone(comet, acceptors);
    this.#acceptors = Object.values(acceptors);
    this.#api = api;
    this.#apiStopping = apiStopping;
    this.#shutdownTimeout = shutdownTimeout;
    const addrs: ServerAddrs = {};
    for (const [name, acceptor] of Object.entries(acceptors)) {
      addrs[name as keyof Acceptors] = acceptor.addr;
    }
    if (api) addrs.api = api.addr;
    this.addrs = addrs;
    this.finished = new Promise((resolve) => (this.#done = resolve));
  }

  /**
   * Stops accepting, sends op 6 to every client, flushes and closes them,
   * leaves the cluster (its sessions are gone from the registry by then),
   * then stops the API. Each of the two phases takes at most the shutdown
   * timeout. Idempotent.
   */
  shutdown(): Promise<void> {
    return this.#shutdown ??= (async () => {
      try {
        for (const acceptor of this.#acceptors) acceptor.close();
        await Promise.all(this.#acceptors.map((a) => a.finished));
        await this.comet.close(this.#shutdownTimeout);
      } finally {
        try {
          await this.cluster.close();
        } catch (err) {
          this.comet.logger.warn("Leaving the cluster failed", { error: err });
        }
        try {
          await this.#stopApi(this.#shutdownTimeout);
        } finally {
          this.#done();
        }
      }
    })();
  }

  /**
   * Stops the push API within `timeout` ms: idle connections close at once,
   * pushes still reading a body are failed with 503 (a client that stalls
   * mid-upload would otherwise hold shutdown up), other requests in flight
   * are answered, and a connection still open after `timeout` is cut off.
   */
  async #stopApi(timeout: number): Promise<void> {
    const api = this.#api;
    if (!api) return;
    this.#apiStopping?.abort();
    if (!await api.shutdown(timeout)) {
      this.comet.logger.warn("API shutdown timed out; cutting its last connections off");
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
 * The push API lets whoever reaches it push to every client, so without an
 * `apiToken` it only listens on loopback. Without an `operator`, clients are
 * trusted as goim does ({@linkcode DefaultOperator}); on a listener other
 * hosts can reach, that is logged as a warning (the `comet` command refuses
 * it unless told `--insecure-open-auth`).
 *
 * @throws {TypeError} When a TLS listener has no certificate, or the push
 * API would listen beyond loopback without a token.
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
  const { signal, historySize, historyTtl, historyMemory, ...rest } = options;
  const apiAt = options.api === false ? undefined : options.api ?? DEFAULTS.api;
  let refusal: string | undefined;
  if ((options.tcpTls || options.wss) && !options.tls) {
    refusal = "TLS listeners need a certificate: pass tls with cert and key";
  } else if (apiAt && !options.apiToken && !isLoopback(apiAt.hostname ?? DEFAULTS.hostname)) {
    refusal = `Push API without a token lets anyone push to every client; refusing to listen on ${
      hostPort(apiAt.hostname ?? DEFAULTS.hostname, apiAt.port)
    }: pass apiToken`;
  }
  if (refusal !== undefined) {
    // The server owns the cluster it is given, even when it never starts.
    void options.cluster?.close();
    throw new TypeError(refusal);
  }
  const logger = options.logger ?? createLogger({ level: DEFAULTS.log });
  const cluster = options.cluster ?? new MemoryCluster();
  let comet: Comet;
  try {
    const history = options.history ??
      _history(cluster, logger, historySize, historyTtl, historyMemory);
    comet = new Comet({ ...rest, logger, ...(history !== undefined && { history }) });
  } catch (err) {
    void cluster.close();
    throw err;
  }
  const acceptors: Acceptors = {};
  let api: HttpServer | undefined;
  const apiStopping = new AbortController();
  try {
    if (options.tcp !== false) acceptors.tcp = listenTcp(comet, options.tcp ?? { ...DEFAULTS.tcp });
    if (options.ws !== false) acceptors.ws = listenWs(comet, options.ws ?? { ...DEFAULTS.ws });
    if (options.tls) {
      const tls = options.tls;
      if (options.tcpTls) acceptors.tcpTls = listenTcp(comet, { ...options.tcpTls, tls });
      if (options.wss !== false) {
        acceptors.wss = listenWs(comet, { ...options.wss ?? DEFAULTS.wss, tls });
      }
    }
    if (options.pkg) acceptors.pkg = listenPkg(comet, options.pkg);
    if (options.operator === undefined || options.operator instanceof DefaultOperator) {
      for (const [name, acceptor] of Object.entries(acceptors)) {
        if (isLoopback(acceptor.addr.hostname)) continue;
        logger.warn(
          "Open auth on a listener other hosts can reach: any client may claim any user",
          {
            listener: name,
            addr: hostPort(acceptor.addr.hostname, acceptor.addr.port),
          },
        );
      }
    }
    cluster.attach(comet, _address(acceptors, options.domain));
    if (apiAt) {
      const handler = createApiHandler(comet, {
        cluster,
        nodes: _nodes(comet, cluster, acceptors, options.domain),
        signal: apiStopping.signal,
        ...(options.apiToken !== undefined && { token: options.apiToken }),
        ...(options.maxPushBody !== undefined && { maxBody: options.maxPushBody }),
      });
      api = new HttpServer(bindListener(apiAt, undefined, "api"), handler, {
        name: "api",
        logger,
        onError(err) {
          logger.error("API handler failed", { error: err });
          // Every API response is the goim envelope, this one too.
          return Response.json({ code: -500, message: "Internal server error", data: null }, {
            status: 500,
          });
        },
        ...(options.apiHeaderTimeout !== undefined && { headerTimeout: options.apiHeaderTimeout }),
        ...(options.apiBodyTimeout !== undefined && { bodyTimeout: options.apiBodyTimeout }),
        ...(options.apiIdleTimeout !== undefined && { idleTimeout: options.apiIdleTimeout }),
        ...(options.apiMaxConnections !== undefined &&
          { maxConnections: options.apiMaxConnections }),
      });
    }
  } catch (err) {
    for (const acceptor of Object.values(acceptors)) acceptor.close();
    void comet.close(0).finally(() => cluster.close());
    throw err;
  }
  const server = new CometServer(
    comet,
    acceptors,
    api,
    options.shutdownTimeout ?? DEFAULTS.shutdownTimeout,
    apiStopping,
    cluster,
  );
  if (signal?.aborted) void server.shutdown();
  else signal?.addEventListener("abort", () => void server.shutdown(), { once: true });
  return server;
}

/**
 * The history of a server's hub: none with size 0, else the cluster's (it
 * orders streams across nodes) or one in memory.
 *
 * @throws {RangeError} When the size or ttl is out of range.
 */
function _history(
  cluster: Cluster,
  logger: Logger,
  size = DEFAULTS.historySize,
  ttl = DEFAULTS.historyTtl,
  memory = DEFAULTS.historyMemory,
): StreamHistory | undefined {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(`History size must be a non-negative integer: ${size}`);
  }
  if (!(ttl > 0) || !Number.isFinite(ttl)) {
    throw new RangeError(`History ttl must be a positive number of milliseconds: ${ttl}`);
  }
  if (!(memory > 0)) {
    throw new RangeError(`History memory must be a positive number of bytes: ${memory}`);
  }
  if (size === 0) return undefined;
  const limits: HistoryLimits = { size, ttl, ...(memory !== Infinity && { memory }) };
  return cluster.history?.(limits) ??
    new MemoryHistory({ ...limits, warn: (message, fields) => logger.warn(message, fields) });
}

/** Where clients reach this node, as the cluster advertises it. */
function _address(acceptors: Acceptors, domain?: string): NodeAddress {
  const host = domain ?? acceptors.tcp?.addr.hostname ?? acceptors.ws?.addr.hostname ??
    DEFAULTS.hostname;
  return {
    host,
    tcpPort: acceptors.tcp?.addr.port ?? 0,
    wsPort: acceptors.ws?.addr.port ?? 0,
    wssPort: acceptors.wss?.addr.port ?? 0,
  };
}

/** A single-node cluster for a server made without `serve()`. */
function _alone(comet: Comet, acceptors: Acceptors): Cluster {
  const cluster = new MemoryCluster();
  cluster.attach(comet, _address(acceptors));
  return cluster;
}

/**
 * What `/goim/nodes/weighted` reports: this node's domain and ports, and the
 * live nodes of the cluster, least loaded first, so clients spread out.
 */
function _nodes(
  comet: Comet,
  cluster: Cluster,
  acceptors: Acceptors,
  domain?: string,
): () => NodesInfo {
  const own = _address(acceptors, domain);
  const heartbeat = Math.max(1, Math.round(comet.heartbeatTimeout / 2 / 1000));
  return () => {
    const nodes = cluster.nodes().sort((a, b) => a.connections - b.connections);
    // The workers of one process are nodes of their own with `--redis`, on the same ports.
    const addrs = new Set<string>();
    const domains = new Set<string>();
    for (const node of nodes) {
      if (node.tcpPort > 0) addrs.add(hostPort(node.host, node.tcpPort));
      domains.add(node.host);
    }
    return {
      domain: own.host,
      tcpPort: own.tcpPort,
      wsPort: own.wsPort,
      wssPort: own.wssPort,
      heartbeat,
      heartbeatMax: 2,
      addrs: [...addrs],
      domains: [...domains],
    };
  };
}
