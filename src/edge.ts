/**
 * Comet as one `fetch` handler: goim clients upgrade to WebSocket on `/sub`,
 * application backends push through the goim push API (`/goim/push/...`,
 * `/goim/online/...`, `/healthz`) at the same origin. The default export
 * runs unchanged under `deno serve` and on an edge platform that serves a
 * module's default `fetch`:
 *
 * ```sh
 * COMET_API_TOKEN=secret COMET_AUTH=jwt COMET_JWT_SECRET=... \
 *   deno serve --allow-env --allow-net src/edge.ts
 * ```
 *
 * Settings come from environment variables, read on the first request
 * through the `comet` command's own table: every flag of `comet --help` that
 * means something here is a variable, `COMET_` and the flag's name in
 * capitals with dashes as underscores (`--max-connections-per-ip` is
 * `COMET_MAX_CONNECTIONS_PER_IP`), with the same values and defaults. A
 * switch reads `1` or `0`; an empty variable is an unset one. A variable the
 * process may not read (no `--allow-env`) reads as unset, and a warning
 * says so.
 *
 * | variables | meaning |
 * |-----------|---------|
 * | `COMET_API_TOKEN` | bearer token the push API requires; unset, the API answers 503 |
 * | `COMET_AUTH` | client auth: `jwt`, `webhook` or `open`; `open` is refused unless `COMET_INSECURE_OPEN_AUTH=1` |
 * | `COMET_INSECURE_OPEN_AUTH` | `1`: serve open auth, where any client may claim any user |
 * | `COMET_JWT_SECRET`, `COMET_JWT_PUBLIC_KEY`, `COMET_JWT_ALG`, `COMET_JWT_ISSUER`, `COMET_JWT_AUDIENCE` | the JWT key (a secret, or a PEM file, which needs `--allow-read`) and claims, with `COMET_AUTH=jwt` |
 * | `COMET_WEBHOOK_URL`, `COMET_WEBHOOK_SECRET`, `COMET_WEBHOOK_TIMEOUT`, `COMET_WEBHOOK_CONCURRENCY` | the auth webhook, with `COMET_AUTH=webhook` |
 * | `COMET_MAX_CONNECTIONS`, `COMET_MAX_CONNECTIONS_PER_IP`, `COMET_CONNECT_RATE`, `COMET_MAX_AUTH_ATTEMPTS`, `COMET_UPSTREAM_RATE`, `COMET_MAX_ROOMS` | limits, `0` for none |
 * | `COMET_HANDSHAKE_TIMEOUT`, `COMET_HEARTBEAT_TIMEOUT` | time to authenticate; silence allowed after a heartbeat |
 * | `COMET_MAX_BODY`, `COMET_QUEUE`, `COMET_SLOW` | largest inbound body; frames pushed to one connection alone queued; a slow connection's policy |
 * | `COMET_WRITE_TIMEOUT`, `COMET_MAX_BACKLOG`, `COMET_ROOM_BACKLOG` | how long a socket may refuse writes before it is slow; bytes all queues, and one room's log, may hold |
 * | `COMET_BUCKETS`, `COMET_WRITE_CONCURRENCY`, `COMET_WRITE_BURST` | connection shards; socket writes in flight; write turns per event-loop visit |
 * | `COMET_LOG`, `COMET_LOG_FORMAT`, `COMET_TRACE_MID` | log level, `text` or `json`, user ids to trace |
 * | `COMET_HISTORY_SIZE`, `COMET_HISTORY_TTL`, `COMET_HISTORY_MEMORY` | pushes each stream keeps for clients that reconnect, for how long, and the bytes all streams may hold; streams need the isolates' bus to order them, and are off while it does not |
 *
 * Each defaults to the command's default, as `comet --help` and the flag
 * table of docs/configuration.md state it, from the one table in `src/defaults.ts`.
 *
 * Refused here, since `deno serve` or the platform owns the listener and
 * its TLS, and one edge hub is no cluster node: `COMET_TCP`, `COMET_WS`,
 * `COMET_TCP_TLS`, `COMET_WSS`, `COMET_PKG`, `COMET_PKG_HEADER`,
 * `COMET_API`, `COMET_API_HEADER_TIMEOUT`, `COMET_API_BODY_TIMEOUT`,
 * `COMET_API_IDLE_TIMEOUT`, `COMET_API_MAX_CONNECTIONS`, `COMET_TLS_CERT`,
 * `COMET_TLS_KEY`, `COMET_REDIS`,
 * `COMET_NODE_ID`, `COMET_ADVERTISE`, `COMET_SESSION_TTL`,
 * `COMET_REPORT_INTERVAL`.
 *
 * An edge origin is public, so what the command refuses beyond loopback is
 * refused here always. Open auth (goim's: the auth JSON says who the client
 * is) needs `COMET_INSECURE_OPEN_AUTH=1`. Without `COMET_API_TOKEN` every API
 * request gets 503 and a warning is logged once. A refused setting, an
 * invalid value or an unusable key fails every request with 500 and logs
 * the reason, naming the variable, once.
 *
 * The limits count per client IP as `deno serve` sees it: behind a proxy
 * every client has the proxy's address, unless `COMET_TRUST_PROXY` names
 * the proxy; then they count the client it forwards in `X-Forwarded-For`.
 *
 * Each isolate is one hub, and the isolates of one process are joined by a
 * `BusCluster` on the `BroadcastChannel` `comet-edge-bus`: under
 * `deno serve --parallel` (as many isolates as CPUs, or `DENO_JOBS`), a
 * push taken by any isolate reaches every client of the process, and online
 * counts, heartbeat replies, `/metrics` (with a `worker` label per isolate,
 * a random number) and `/goim/nodes/instances` are the process's. An
 * isolate starts its hub on its first request. On a platform that spreads
 * an origin over several processes or machines, a push still reaches only
 * the clients of the process that took the push request. On SIGTERM,
 * `deno serve` itself closes every WebSocket with 1001 ("Server shutting
 * down") and exits; goim clients reconnect.
 *
 * @example
 * ```ts ignore
 * import edge from "./edge.ts";
 *
 * Deno.serve({ port: 8000 }, edge.fetch);
 * ```
 *
 * @module
 */
import { cometOptionsFromConfig } from "./comet_options.ts";
import { type CliConfig, ConfigError, type EnvLookup, envName, parseEnvConfig } from "./config.ts";
import { denoEnv } from "./config_names.ts";
import { DEFAULTS } from "./defaults.ts";
import { type CometHandler, createCometHandler } from "./handler.ts";
import { createLogger, type Logger } from "./log.ts";
import { BusCluster } from "./cluster/bus_cluster.ts";
import { Comet } from "./server/comet.ts";

export type { EnvLookup } from "./config.ts";

/**
 * Settings of the edge entry: the `comet` command's, read from the
 * environment; the listener and cluster ones stay at their defaults.
 */
export type EdgeConfig = CliConfig;

const _LISTENER = "deno serve or the platform owns the listener";

/** The `BroadcastChannel` the isolates of one edge process share. */
const _EDGE_BUS = "comet-edge-bus";

/** The command's flags that have no meaning at the edge, and why. */
const _NOT_HERE: Readonly<Record<string, string>> = {
  tcp: _LISTENER,
  ws: _LISTENER,
  "tcp-tls": _LISTENER,
  wss: _LISTENER,
  pkg: _LISTENER,
  "pkg-header": _LISTENER,
  api: _LISTENER,
  "api-header-timeout": _LISTENER,
  "api-body-timeout": _LISTENER,
  "api-idle-timeout": _LISTENER,
  "api-max-connections": _LISTENER,
  "tls-cert": "deno serve (--cert, --key) or the platform terminates TLS",
  "tls-key": "deno serve (--cert, --key) or the platform terminates TLS",
  redis: "an edge hub is not a cluster node",
  "node-id": "an edge hub is not a cluster node",
  advertise: "an edge hub is not a cluster node",
  "session-ttl": "an edge hub is not a cluster node",
  "report-interval": "an edge hub is not a cluster node",
};

/**
 * Reads the edge settings (see the module doc) through `env`: the `comet`
 * command's settings from their variables, less those that mean nothing
 * here, with open auth refused unless `COMET_INSECURE_OPEN_AUTH` allows it.
 *
 * @throws {ConfigError} Naming the variable that is refused or invalid, or
 * the variables that do not go together.
 *
 * @example
 * ```ts
 * import { readEdgeConfig } from "./edge.ts";
 *
 * const env: Record<string, string> = {
 *   COMET_API_TOKEN: "secret",
 *   COMET_AUTH: "jwt",
 *   COMET_JWT_SECRET: "a shared secret of at least 32 bytes",
 *   COMET_QUEUE: "16",
 * };
 * const config = readEdgeConfig((name) => env[name]);
 * console.log(config.queueSize, config.jwtAlg); // 16 HS256
 * ```
 */
export function readEdgeConfig(env: EnvLookup): EdgeConfig {
  for (const [flag, why] of Object.entries(_NOT_HERE)) {
    const name = envName(flag);
    if (env(name)?.trim()) throw new ConfigError(`${name} is not for the edge: ${why}`);
  }
  const config = parseEnvConfig(env);
  if (config.auth === "open" && !config.insecureOpenAuth) {
    throw new ConfigError(
      "Open auth lets any client claim any user; refusing to serve: set COMET_AUTH=jwt or COMET_AUTH=webhook, or COMET_INSECURE_OPEN_AUTH=1",
    );
  }
  return config;
}

function _envelope(status: number, message: string): Response {
  return Response.json({ code: -status, message, data: null }, { status });
}

/** Lines go through the console: some edge platforms give a module no stderr. */
function _logger(config?: EdgeConfig): Logger {
  return createLogger({
    level: config?.log ?? DEFAULTS.log,
    format: config?.logFormat ?? DEFAULTS.logFormat,
    write: (line) => console.error(line),
  });
}

/** The handler of the one hub, made on the first request; or why it could not be. */
let _edge: Promise<CometHandler | ConfigError> | undefined;

async function _start(): Promise<CometHandler | ConfigError> {
  const unreadable: string[] = [];
  const warnUnreadable = (logger: Logger) => {
    if (unreadable.length === 0) return;
    logger.warn("COMET_* variables the process may not read count as unset: pass --allow-env", {
      unreadable: unreadable.length,
    });
  };
  let config: EdgeConfig | undefined;
  let logger = _logger();
  try {
    config = readEdgeConfig(denoEnv((name) => unreadable.push(name)));
    logger = _logger(config);
    warnUnreadable(logger);
    const hub = await cometOptionsFromConfig(config, { logger, name: envName });
    // `deno serve --parallel` gives isolates no number: a random one tells them apart.
    const cluster = new BusCluster({ workerId: _randomWorkerId(), channel: _EDGE_BUS, logger });
    // Over the lossy channel each isolate orders its own streams (bus_streams.ts): a client
    // resumes on the isolate it left, and a channel that drops messages starts new epochs.
    const { historySize: size, historyTtl: ttl, historyMemory: memory } = config;
    const limits = { size, ttl, ...(memory !== Infinity && { memory }) };
    const history = size > 0 ? cluster.history(limits) : undefined;
    const comet = new Comet({ ...hub, ...(history !== undefined && { history }) });
    cluster.attach(comet, { host: "", tcpPort: 0, wsPort: 0, wssPort: 0 });
    _closeOnSigterm(cluster);
    return _handler(comet, cluster, config.apiToken, logger);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (config === undefined) warnUnreadable(logger);
    logger.error("Comet is misconfigured; every request fails until it is fixed", { error: err });
    return err;
  }
}

/**
 * An open `BroadcastChannel` keeps an isolate alive: once `deno serve` has
 * shut down on SIGTERM, the bus must go too, or the process never exits.
 */
function _closeOnSigterm(cluster: BusCluster): void {
  try {
    Deno.addSignalListener("SIGTERM", () => void cluster.close());
  } catch {
    // A platform without signals ends its isolates itself.
  }
}

function _randomWorkerId(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! >>> 1;
}

function _handler(
  comet: Comet,
  cluster: BusCluster,
  token: string | undefined,
  logger: Logger,
): CometHandler {
  if (token !== undefined) return createCometHandler(comet, { api: { token, cluster } });
  // A public origin must not take pushes from anyone: no token, no API.
  logger.warn("COMET_API_TOKEN is not set; the push API answers 503 until it is");
  const sub = createCometHandler(comet, { api: false });
  return (request, info) => {
    if (request.headers.has("upgrade")) return sub(request, info);
    return _envelope(503, "Push API is disabled: set COMET_API_TOKEN to enable it");
  };
}

/**
 * The edge entry: serves `/sub` and the push API of one hub made on the
 * first request from the environment (see the module doc).
 */
const _entry: Deno.ServeDefaultExport = {
  async fetch(request: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const edge = await (_edge ??= _start());
    if (edge instanceof ConfigError) {
      return _envelope(500, "Comet is misconfigured; see the server log");
    }
    return edge(request, info);
  },
};

/** The `fetch` entry `deno serve` and edge platforms call. */
export default _entry;
