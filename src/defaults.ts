/**
 * The one table of defaults: the `comet` command's flags and `--help`,
 * `serve()`, the edge entry and the flag table of docs/configuration.md
 * all read their defaults here, and `tests/defaults_test.ts` fails when
 * the help or that table states another.
 *
 * Values a component owns (the protocol's body size; the hub's timing,
 * sizing, write line, backlog caps and limits, in `server/defaults.ts`; the
 * webhook's call bounds; the cluster's report interval) are imported from
 * where they are defined, so the component's own fallback and this table
 * cannot part. Values of the entries (ports, hostnames, the push API's
 * deadlines and caps) are defined here, and the components the entries
 * build read them.
 *
 * @example
 * ```ts
 * import { DEFAULTS } from "./defaults.ts";
 *
 * console.log(DEFAULTS.tcp.port, DEFAULTS.heartbeatTimeout); // 3101 480000
 * ```
 *
 * @module
 */
import { DEFAULT_WEBHOOK } from "./auth/webhook_operator.ts";
import { DEFAULT_REPORT_INTERVAL } from "./cluster/report_exchange.ts";
import {
  DEFAULT_BACKLOG,
  DEFAULT_BUCKETS,
  DEFAULT_HANDSHAKE_TIMEOUT,
  DEFAULT_HEARTBEAT_TIMEOUT,
  DEFAULT_LIMITS,
  DEFAULT_MAX_BODY,
  DEFAULT_QUEUE_SIZE,
  DEFAULT_SHUTDOWN_TIMEOUT,
  DEFAULT_WRITE_BURST,
  DEFAULT_WRITE_CONCURRENCY,
  DEFAULT_WRITE_TIMEOUT,
} from "./server/defaults.ts";
import type { CometLimits } from "./server/limits.ts";

/**
 * A default listen address.
 *
 * @example
 * ```ts
 * import { type DefaultAddress, DEFAULTS } from "./defaults.ts";
 *
 * const tcp: DefaultAddress = DEFAULTS.tcp;
 * console.log(`${tcp.hostname}:${tcp.port}`); // 127.0.0.1:3101
 * ```
 */
export interface DefaultAddress {
  /** Host name or address. */
  readonly hostname: string;
  /** Port. */
  readonly port: number;
}

/**
 * The shape of {@linkcode DEFAULTS}. Durations are in milliseconds, sizes in bytes.
 *
 * @example
 * ```ts
 * import { type Defaults, DEFAULTS } from "./defaults.ts";
 *
 * const defaults: Defaults = DEFAULTS;
 * console.log(defaults.queueSize, defaults.slow); // 128 close
 * ```
 */
export interface Defaults {
  /** Where a listener given only a port listens: loopback, so nothing is exposed unless asked. */
  readonly hostname: string;
  /** goim binary protocol over TCP. */
  readonly tcp: DefaultAddress;
  /** goim over WebSocket. */
  readonly ws: DefaultAddress;
  /** goim over secure WebSocket, once a certificate is given. */
  readonly wss: DefaultAddress;
  /** The push API. */
  readonly api: DefaultAddress;
  /** Bytes of the gtcp pkg length prefix. */
  readonly pkgHeader: 2;
  /** How long the push API waits for a request's line and headers. */
  readonly apiHeaderTimeout: number;
  /** How long the push API waits for a request's body once its headers are in. */
  readonly apiBodyTimeout: number;
  /** How long a kept-alive push API connection may wait for its next request. */
  readonly apiIdleTimeout: number;
  /** Push API connections at once. */
  readonly apiMaxConnections: number;
  /** Largest request line and headers the push API reads. */
  readonly apiMaxHeaderBytes: number;
  /** Largest push body the push API accepts. */
  readonly maxPushBody: number;
  /** How long a connection may take to authenticate. */
  readonly handshakeTimeout: number;
  /** How long a connection may stay silent after a heartbeat. */
  readonly heartbeatTimeout: number;
  /** Largest inbound frame body (goim's `MaxBodySize`). */
  readonly maxBody: number;
  /** Connection shards. */
  readonly buckets: number;
  /** Frames pushed to one connection alone that may wait before it is slow. */
  readonly queueSize: number;
  /** Socket writes in flight at most. */
  readonly writeConcurrency: number;
  /** Write turns started per visit of the event loop. */
  readonly writeBurst: number;
  /** What happens to a slow connection. */
  readonly slow: "close";
  /** How long a socket may refuse writes, with a full queue waiting, before it is slow. */
  readonly writeTimeout: number;
  /** Bytes all queues and room logs may hold. */
  readonly maxBacklog: number;
  /** Bytes one room's log may hold within one bucket. */
  readonly roomBacklog: number;
  /** Pushes each stream keeps for clients that reconnect; 0 turns streams off. */
  readonly historySize: number;
  /** How long each stream keeps its pushes. */
  readonly historyTtl: number;
  /** Bytes a history in memory may hold in all, per process (split over workers). */
  readonly historyMemory: number;
  /** The `comet` command's connection and client limits. */
  readonly limits: Readonly<Required<CometLimits>>;
  /** How the `comet` command authenticates clients. */
  readonly auth: "open";
  /** How long one webhook auth call may take, waiting for a slot included. */
  readonly webhookTimeout: number;
  /** Webhook calls in flight at most. */
  readonly webhookConcurrency: number;
  /** How often a cluster node reports its online counts. */
  readonly reportInterval: number;
  /** Log level. */
  readonly log: "info";
  /** Log line format. */
  readonly logFormat: "text";
  /** How long a shutdown may take before connections are cut off. */
  readonly shutdownTimeout: number;
  /** Worker isolates of the `comet` command: `auto` is one per CPU. */
  readonly workers: "auto";
  /** The most worker isolates the `comet` command starts. */
  readonly maxWorkers: number;
}

const _HOSTNAME = "127.0.0.1";
const _loopback = (port: number): DefaultAddress => Object.freeze({ hostname: _HOSTNAME, port });

/**
 * The defaults of every entry (see the module doc). Frozen, nested objects
 * too: copy before changing.
 *
 * @example
 * ```ts
 * import { DEFAULTS } from "./defaults.ts";
 *
 * console.log(DEFAULTS.limits.upstreamRate, DEFAULTS.api.port); // 100 3111
 * ```
 */
export const DEFAULTS: Defaults = Object.freeze({
  hostname: _HOSTNAME,
  tcp: _loopback(3101),
  ws: _loopback(3102),
  wss: _loopback(3103),
  api: _loopback(3111),
  pkgHeader: 2,
  apiHeaderTimeout: 10_000,
  apiBodyTimeout: 30_000,
  apiIdleTimeout: 60_000,
  apiMaxConnections: 1024,
  apiMaxHeaderBytes: 16 * 1024,
  maxPushBody: 1024 * 1024,
  handshakeTimeout: DEFAULT_HANDSHAKE_TIMEOUT,
  heartbeatTimeout: DEFAULT_HEARTBEAT_TIMEOUT,
  maxBody: DEFAULT_MAX_BODY,
  buckets: DEFAULT_BUCKETS,
  queueSize: DEFAULT_QUEUE_SIZE,
  writeConcurrency: DEFAULT_WRITE_CONCURRENCY,
  writeBurst: DEFAULT_WRITE_BURST,
  slow: "close",
  writeTimeout: DEFAULT_WRITE_TIMEOUT,
  maxBacklog: DEFAULT_BACKLOG.maxBytes,
  roomBacklog: DEFAULT_BACKLOG.maxRoomBytes,
  historySize: 1000,
  historyTtl: 120_000,
  historyMemory: 256 * 1024 * 1024,
  limits: DEFAULT_LIMITS,
  auth: "open",
  webhookTimeout: DEFAULT_WEBHOOK.timeout,
  webhookConcurrency: DEFAULT_WEBHOOK.concurrency,
  reportInterval: DEFAULT_REPORT_INTERVAL,
  log: "info",
  logFormat: "text",
  shutdownTimeout: DEFAULT_SHUTDOWN_TIMEOUT,
  workers: "auto",
  maxWorkers: 256,
});
