/**
 * The settings of the `comet` command, as `parseConfig` and
 * `parseEnvConfig` give them: one type that the flag table, the checks,
 * the CLI and the edge entry share.
 *
 * @module
 */
import type { JwtAlgorithm } from "./auth/jwt.ts";
import type { LogFormat, LogLevel } from "./log.ts";
import type { SlowPolicy } from "./server/channel.ts";
import type { CometLimits } from "./server/comet.ts";
import type { ListenOptions } from "./transport/acceptor.ts";
import type { PkgHeaderSize } from "./transport/pkg.ts";

/**
 * How the `comet` command authenticates clients: `open` trusts the auth JSON
 * (goim's behaviour), `jwt` verifies a signed token, `webhook` asks the
 * application over HTTP.
 */
export type AuthMode = "open" | "jwt" | "webhook";

/**
 * Settings of the `comet` command, after parsing flags, config file and
 * environment; the edge entry reads the same from the environment alone.
 */
export interface CliConfig {
  /** TCP listen address, or false when off. */
  tcp: ListenOptions | false;
  /** WebSocket listen address, or false when off. */
  ws: ListenOptions | false;
  /** TLS (goim binary protocol) listen address, or false when off. */
  tcpTls: ListenOptions | false;
  /** Secure WebSocket listen address; undefined means 127.0.0.1:3103 when TLS is set. */
  wss?: ListenOptions | false;
  /** gtcp pkg listen address, or false when off. */
  pkg: ListenOptions | false;
  /** Bytes of the pkg length prefix. */
  pkgHeader: PkgHeaderSize;
  /** Path of the PEM certificate chain for TLS listeners. */
  tlsCert?: string;
  /** Path of the PEM private key for TLS listeners. */
  tlsKey?: string;
  /** Push API listen address, or false when off. */
  api: ListenOptions | false;
  /** Bearer token the push API requires, if any. */
  apiToken?: string;
  /** How long the push API waits for a request's line and headers, in ms. */
  apiHeaderTimeout: number;
  /** How long the push API waits for a request's body once its headers are in, in ms. */
  apiBodyTimeout: number;
  /** How long a kept-alive push API connection may wait for its next request, in ms. */
  apiIdleTimeout: number;
  /** Push API connections at once; `Infinity` for no limit. */
  apiMaxConnections: number;
  /** Handshake timeout in ms. */
  handshakeTimeout: number;
  /** Heartbeat timeout in ms. */
  heartbeatTimeout: number;
  /** Largest inbound body in bytes. */
  maxBody: number;
  /** Number of buckets. */
  buckets: number;
  /** Frames queued per connection. */
  queueSize: number;
  /** Socket writes in flight at most. */
  writeConcurrency: number;
  /** Write turns started per visit of the event loop. */
  writeBurst: number;
  /** Slow-consumer policy. */
  slow: SlowPolicy;
  /** How long a socket may refuse writes, with a full queue waiting, before it is slow; in ms. */
  writeTimeout: number;
  /** Bytes all queues and room logs may hold; Infinity for no cap. */
  maxBacklog: number;
  /** Bytes one room's log may hold within one bucket; Infinity for no cap. */
  roomBacklog: number;
  /** Pushes each stream keeps for clients that reconnect; 0: streams off. */
  historySize: number;
  /** How long each stream keeps its pushes, in ms. */
  historyTtl: number;
  /** Bytes a history in memory may hold in all; Infinity for no cap. */
  historyMemory: number;
  /** Log level. */
  log: LogLevel;
  /** Log line format. */
  logFormat: LogFormat;
  /** User ids whose connections log every step. */
  traceMids: number[];
  /** How clients are authenticated. */
  auth: AuthMode;
  /** Whether open auth may listen on addresses other hosts can reach. */
  insecureOpenAuth: boolean;
  /** HS256 shared secret (`--auth jwt`). */
  jwtSecret?: string;
  /** Path of the PEM public key or certificate for RS256 and ES256 (`--auth jwt`). */
  jwtPublicKey?: string;
  /** JWT algorithm; default HS256 with a secret, RS256 with a public key. */
  jwtAlg?: JwtAlgorithm;
  /** Issuer tokens must name. */
  jwtIssuer?: string;
  /** Audience tokens must name. */
  jwtAudience?: string;
  /** The application's auth endpoint (`--auth webhook`). */
  webhookUrl?: string;
  /** How long one webhook auth call may take, in ms. */
  webhookTimeout?: number;
  /** Secret sent to the webhook as a bearer token. */
  webhookSecret?: string;
  /** Webhook calls in flight at most. */
  webhookConcurrency?: number;
  /** Connection and client limits; `Infinity` for none. */
  limits: Required<CometLimits>;
  /** Redis URL of the cluster; absent for a single node. */
  redis?: string;
  /** This node's id in the cluster. */
  nodeId?: string;
  /** Host name or address clients should use for this node. */
  advertise?: string;
  /** How long a session stays in the cluster registry without a heartbeat, in ms. */
  sessionTtl?: number;
  /** How often the node reports its counts to the cluster, in ms. */
  reportInterval?: number;
  /**
   * Isolates serving clients, each with its own hub, on the same ports:
   * `auto` for one per CPU, `1` for the main isolate alone (no Worker).
   */
  workers: number | "auto";
  /** Whether `--help` was asked for. */
  help: boolean;
  /** Whether `--version` was asked for. */
  version: boolean;
}
